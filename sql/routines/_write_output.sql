-- Write a finished predict_table request's scores into its output table, with the privileges of
-- the caller (INVOKER), in one transaction that also marks the output written: all rows or none,
-- once. Does nothing for other requests, unfinished ones, or an output already written.
-- execute: mlbridge_user
CREATE PROCEDURE _write_output(IN p_id BIGINT UNSIGNED)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_output VARCHAR(200);
  DECLARE v_key VARCHAR(64);
  DECLARE v_first BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_output`;
    SET @mlbridge_sql = NULL;
    RESIGNAL;
  END;
  CALL _attest();
  CALL _output_rows(p_id, v_output, v_key);
  IF v_output IS NOT NULL THEN
    START TRANSACTION;
    CALL _attest();
    CALL _output_written(p_id, v_first);
    IF v_first THEN
      SET @mlbridge_sql = CONCAT('INSERT INTO ', v_output, ' (`', REPLACE(v_key, '`', '``'),
                                 '`, score, output, error, model_version) ',
                                 'SELECT k, score, output, error, model_version FROM `{{scratch}}`.`predict_output`');
      PREPARE mlbridge_stmt FROM @mlbridge_sql;
      EXECUTE mlbridge_stmt;
      DEALLOCATE PREPARE mlbridge_stmt;
    END IF;
    COMMIT;
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_output`;
    SET @mlbridge_sql = NULL;
  END IF;
END
