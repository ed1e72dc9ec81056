-- The caller's most recent requests, newest first.
CREATE PROCEDURE request_list(IN p_limit INT)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: your most recent requests and their progress'
BEGIN
  DECLARE v_limit INT DEFAULT LEAST(GREATEST(COALESCE(p_limit, 20), 1), 1000);
  SELECT id AS request_id, kind, status, CONCAT(model_name, ':', model_version) AS model,
         rows_total, rows_done, rows_failed,
         ROUND(IF(rows_total = 0, 100, 100 * (rows_done + rows_failed) / rows_total), 1) AS percent,
         error, created_at, finished_at
    FROM requests
   WHERE owner = SUBSTRING_INDEX(USER(), '@', 1)
   ORDER BY id DESC
   LIMIT v_limit;
END
