-- request_results's DEFINER half: the rows of one of the account's requests (_caller).
-- execute: mlbridge_user
CREATE PROCEDURE _request_results(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_table VARCHAR(64);
  DECLARE v_owner VARCHAR(400);
  DECLARE v_kind VARCHAR(16);
  DECLARE v_status VARCHAR(16);
  DECLARE v_error TEXT;
  DECLARE v_msg VARCHAR(512);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  SELECT kind, status, error INTO v_kind, v_status, v_error FROM requests WHERE id = p_id;
  IF v_kind IN ('train', 'score', 'explain') THEN
    -- A job's result: (metric, value) for train (its test metrics) and score, (column,
    -- importance, std) for explain, as the trainer worker stored them in requests.result.
    IF v_status <> 'done' THEN
      SET v_msg = LEFT(CONCAT('mlbridge: request ', p_id, ' is ', v_status,
                              IF(v_status = 'failed', CONCAT(': ', COALESCE(v_error, '')),
                                 CONCAT('; wait for it: CALL mlbridge.request_wait(', p_id, ', 600)'))), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_kind = 'explain' THEN
      SELECT j.column_name AS `column`, j.importance, j.std
        FROM requests AS q,
             JSON_TABLE(q.result, '$.importance[*]' COLUMNS (n FOR ORDINALITY, column_name VARCHAR(64) PATH '$.column',
                                                             importance DOUBLE PATH '$.importance', std DOUBLE PATH '$.std')) AS j
       WHERE q.id = p_id ORDER BY j.n;
    ELSE
      SELECT j.metric, j.value
        FROM requests AS q,
             JSON_TABLE(q.result, '$.metrics[*]' COLUMNS (n FOR ORDINALITY, metric VARCHAR(64) PATH '$.name',
                                                          value DOUBLE PATH '$.value')) AS j
       WHERE q.id = p_id ORDER BY j.n;
    END IF;
  ELSE
    SELECT q.rows_table, m.score_output INTO v_table, @mlbridge_score
      FROM requests AS q LEFT JOIN model_versions AS m ON m.name = q.model_name AND m.version = q.model_version
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
  END IF;
  SET @mlbridge_score = NULL;
END
