-- The progress of one of the caller's requests.
CREATE PROCEDURE request_status(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: status, progress and timings of one of your requests'
BEGIN
  CALL _check_owner(p_id);
  SELECT id AS request_id, kind, status, CONCAT(model_name, ':', model_version) AS model,
         rows_total, rows_done, rows_failed,
         ROUND(IF(rows_total = 0, 100, 100 * (rows_done + rows_failed) / rows_total), 1) AS percent,
         error, output_table AS output, output_written_at, created_at, started_at, finished_at,
         ROUND(TIMESTAMPDIFF(MICROSECOND, COALESCE(started_at, created_at),
                             COALESCE(finished_at, NOW(6))) / 1e6, 3) AS seconds
    FROM requests WHERE id = p_id;
END
