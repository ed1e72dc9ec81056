-- request_list's DEFINER half: the requests of the account _caller names.
-- execute: mlbridge_user
CREATE PROCEDURE _request_list(IN p_limit INT)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  DECLARE v_limit INT DEFAULT LEAST(GREATEST(COALESCE(p_limit, 20), 1), 1000);
  CALL _caller(v_owner);
  SELECT id AS request_id, kind, status, CONCAT(model_name, COALESCE(CONCAT(':', model_version), '')) AS model,
         rows_total, rows_done, rows_failed,
         ROUND(IF(rows_total = 0, 100, 100 * (rows_done + rows_failed) / rows_total), 1) AS percent,
         error, created_at, finished_at
    FROM requests
   WHERE owner = v_owner
   ORDER BY id DESC
   LIMIT v_limit;
END
