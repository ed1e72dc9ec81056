-- The scored rows of one of the caller's requests, in key order, each key with the type the
-- caller's SELECT gave it (read from the request's rows table; requests queued before typed rows
-- keep the key's text in request_rows). `output` holds every output of the model as JSON; for a
-- model whose only output is its score the bridge stores none, and it is made here from the score.
CREATE PROCEDURE request_results(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: (row_key, score, output, error) for every row of one of your requests'
BEGIN
  DECLARE v_table VARCHAR(64);
  CALL _check_owner(p_id);
  SELECT q.rows_table, m.score_output INTO v_table, @mlbridge_score
    FROM requests AS q LEFT JOIN models AS m ON m.name = q.model_name AND m.version = q.model_version
   WHERE q.id = p_id;
  IF v_table IS NULL THEN
    -- JSON rows of the first release (their key text in request_rows), or predict_row (no key)
    SELECT COALESCE(r.row_key, q.row_key) AS row_key, r.score,
           COALESCE(r.output, IF(r.error IS NULL AND r.score IS NOT NULL, JSON_OBJECT(@mlbridge_score, r.score), NULL))
             AS output,
           r.error
      FROM results AS r LEFT JOIN request_rows AS q ON q.request_id = r.request_id AND q.seq = r.seq
     WHERE r.request_id = p_id ORDER BY r.seq;
  ELSE
    SET @mlbridge_sql = CONCAT(
      'SELECT d.k AS row_key, r.score, ',
      'COALESCE(r.output, IF(r.error IS NULL AND r.score IS NOT NULL, JSON_OBJECT(?, r.score), NULL)) AS output, ',
      'r.error FROM results AS r JOIN `{{data}}`.`', v_table, '` AS d ON d.seq = r.seq ',
      'WHERE r.request_id = ', p_id, ' ORDER BY d.k, d.seq');
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt USING @mlbridge_score;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET @mlbridge_sql = NULL;
  END IF;
  SET @mlbridge_score = NULL;
END
