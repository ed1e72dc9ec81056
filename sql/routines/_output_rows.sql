-- Stage a finished predict_table request's scores for its owner's session to copy into the
-- output: the session's temporary table {{scratch}}.predict_output (k, score, output, error,
-- model_version), in key order. Returns the output table (`db`.`table`) and key column, or NULL
-- when there is nothing to write: not a predict_table request, not finished, or written already.
-- The account is _caller's.
-- execute: mlbridge_user
CREATE PROCEDURE _output_rows(IN p_id BIGINT UNSIGNED, OUT o_output VARCHAR(200), OUT o_key VARCHAR(64))
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_table VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_owner VARCHAR(400);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  SELECT output_table, key_column, rows_table, model_version INTO o_output, o_key, v_table, v_version
    FROM requests
   WHERE id = p_id AND kind = 'predict_table' AND status IN ('done', 'failed') AND output_written_at IS NULL;
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_output`;
  IF o_output IS NOT NULL THEN
    SET @mlbridge_sql = CONCAT(
      'CREATE TEMPORARY TABLE `{{scratch}}`.`predict_output` {{staging_engine}} AS ',
      'SELECT d.k, r.score, ',
      'COALESCE(r.output, IF(r.error IS NULL AND r.score IS NOT NULL, JSON_OBJECT(?, r.score), NULL)) AS output, ',
      'r.error, ', v_version, ' AS model_version ',
      'FROM `{{data}}`.`', v_table, '` AS d JOIN results AS r ON r.request_id = ', p_id, ' AND r.seq = d.seq ',
      'ORDER BY d.seq');
    SET @mlbridge_score = (SELECT m.score_output FROM requests AS q JOIN model_versions AS m
                              ON m.name = q.model_name AND m.version = q.model_version WHERE q.id = p_id);
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt USING @mlbridge_score;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET @mlbridge_sql = NULL, @mlbridge_score = NULL;
  END IF;
END
