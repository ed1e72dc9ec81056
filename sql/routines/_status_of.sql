-- The status row of request p_id (the calling routine has checked its owner).
CREATE PROCEDURE _status_of(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  SELECT id AS request_id, kind, status, CONCAT(model_name, COALESCE(CONCAT(':', model_version), '')) AS model,
         rows_total, rows_done, rows_failed,
         ROUND(IF(rows_total = 0, 100, 100 * (rows_done + rows_failed) / rows_total), 1) AS percent,
         progress, error, output_table AS output, output_written_at, created_at, started_at, finished_at,
         ROUND(TIMESTAMPDIFF(MICROSECOND, COALESCE(started_at, created_at),
                             COALESCE(finished_at, NOW(6))) / 1e6, 3) AS seconds
    FROM requests WHERE id = p_id;
END
