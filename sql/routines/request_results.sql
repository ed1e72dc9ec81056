-- The scored rows of one of the caller's requests, in key order, each key with the type the
-- caller's SELECT gave it (read from the request's rows table; requests queued before typed rows
-- keep the key's text in results.row_key).
CREATE PROCEDURE request_results(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: (row_key, score, output, error) for every row of one of your requests'
BEGIN
  DECLARE v_table VARCHAR(64);
  CALL _check_owner(p_id);
  SET v_table = (SELECT rows_table FROM requests WHERE id = p_id);
  IF v_table IS NULL THEN
    -- JSON rows of the first release (their key text in request_rows), or predict_row (no key)
    SELECT COALESCE(r.row_key, q.row_key) AS row_key, r.score, r.output, r.error
      FROM results AS r LEFT JOIN request_rows AS q ON q.request_id = r.request_id AND q.seq = r.seq
     WHERE r.request_id = p_id ORDER BY r.seq;
  ELSE
    SET @mlbridge_sql = CONCAT(
      'SELECT d.k AS row_key, r.score, r.output, r.error FROM results AS r ',
      'JOIN `{{data}}`.`', v_table, '` AS d ON d.seq = r.seq ',
      'WHERE r.request_id = ', p_id, ' ORDER BY r.seq');
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET @mlbridge_sql = NULL;
  END IF;
END
