-- CALL mlbridge.predict_table('model', 'shop.customers', 'shop.customer_scores', NULL)
-- Scores every row of a table or view into a new output table: the input's key column (its name
-- and type), score, output (JSON), error and model_version; applications join it back on the key.
-- The key is options.key or the input's primary key. An existing output is refused unless
-- options.mode is 'replace' (dropped and created again) or 'append' (rows added).
--
-- INVOKER: the input is read, and the output created and written, with the caller's own
-- privileges, never the bridge's or the definer's. The bridge scores the rows into mlbridge's
-- own results; the caller's session then copies them into the output (_write_output): the
-- waiting form does this before it returns, and an async request's output is written by the
-- caller's `CALL mlbridge.request_wait(id, timeout)` once it is finished. An async output that
-- nobody waits for is never written (its scores stay readable through request_results).
-- Creating the output is DDL, which commits a transaction: it refuses to run inside one.
-- execute: mlbridge_user
CREATE PROCEDURE predict_table(IN p_model VARCHAR(255), IN p_input VARCHAR(200), IN p_output VARCHAR(200),
                               IN p_options LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: score a table or view into an output table'
BEGIN
  DECLARE v_async BOOLEAN;
  DECLARE v_timeout DOUBLE;
  DECLARE v_key VARCHAR(64);
  DECLARE v_mode VARCHAR(16);
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  DECLARE v_in_schema VARCHAR(64);
  DECLARE v_in_table VARCHAR(64);
  DECLARE v_input VARCHAR(200);
  DECLARE v_out_schema VARCHAR(64);
  DECLARE v_out_table VARCHAR(64);
  DECLARE v_output VARCHAR(200);
  DECLARE v_keys INT;
  DECLARE v_key_type LONGTEXT;
  DECLARE v_key_collation VARCHAR(64);
  DECLARE v_key_data_type VARCHAR(64);
  DECLARE v_exists BOOLEAN;
  DECLARE v_request BIGINT UNSIGNED;
  DECLARE v_status VARCHAR(16);
  DECLARE v_msg VARCHAR(512);
  DECLARE v_created BOOLEAN DEFAULT FALSE;

  CALL _no_transaction('predict_table');
  SET p_options = NULLIF(TRIM(p_options), '');
  CALL _parse_options(p_options, 'predict_table', v_async, v_timeout, v_key, v_mode);
  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  CALL _table_name(p_input, 'input', v_in_schema, v_in_table, v_input);
  CALL _table_name(p_output, 'output', v_out_schema, v_out_table, v_output);

  -- A table the caller cannot see: let MySQL say why (no such table, or SELECT denied).
  IF NOT EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = v_in_schema AND TABLE_NAME = v_in_table) THEN
    SET @mlbridge_sql = CONCAT('SELECT 1 FROM ', v_input, ' LIMIT 0');
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    DEALLOCATE PREPARE mlbridge_stmt;
  END IF;
  IF v_key IS NULL THEN
    SELECT COUNT(*), MIN(COLUMN_NAME) INTO v_keys, v_key FROM information_schema.STATISTICS
     WHERE TABLE_SCHEMA = v_in_schema AND TABLE_NAME = v_in_table AND INDEX_NAME = 'PRIMARY';
    IF v_keys <> 1 THEN
      SET v_msg = LEFT(CONCAT('mlbridge: input ', v_input, IF(v_keys = 0, ' has no primary key', ' has a primary key of several columns'),
                              ': name the key column with options ''{"key": "column"}'''), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
  END IF;
  SELECT COLUMN_TYPE, COLLATION_NAME, DATA_TYPE INTO v_key_type, v_key_collation, v_key_data_type
    FROM information_schema.COLUMNS
   WHERE TABLE_SCHEMA = v_in_schema AND TABLE_NAME = v_in_table AND COLUMN_NAME = v_key;
  IF v_key_type IS NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: input ', v_input, ' has no column `', v_key,
                            '` to use as the key: name one with options ''{"key": "column"}'''), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;

  SET v_exists = EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = v_out_schema AND TABLE_NAME = v_out_table);
  IF v_exists AND v_mode = 'error' THEN
    SET v_msg = LEFT(CONCAT('mlbridge: output ', v_output, ' exists: pass ''{"mode": "replace"}'' or ''{"mode": "append"}'''), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF v_out_schema = v_in_schema AND v_out_table = v_in_table THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the output must be another table than the input';
  END IF;

  -- Stage the rows first: a caller who may not SELECT the input fails here, before any DDL.
  CALL _stage_query(CONCAT('SELECT * FROM ', v_input), v_key, v_inputs, CONCAT(v_name, ':', v_version));
  IF v_exists AND v_mode = 'replace' THEN
    SET @mlbridge_sql = CONCAT('DROP TABLE ', v_output);
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET v_exists = FALSE;
  END IF;
  IF NOT v_exists THEN
    SET @mlbridge_sql = CONCAT(
      'CREATE TABLE ', v_output, ' (`', REPLACE(v_key, '`', '``'), '` ', v_key_type,
      IF(v_key_collation IS NULL, '', CONCAT(' COLLATE ', v_key_collation)), ' NULL, ',
      'score DOUBLE NULL, output JSON NULL, error TEXT NULL, model_version INT UNSIGNED NULL',
      IF(v_key_data_type IN ('tinytext', 'text', 'mediumtext', 'longtext', 'tinyblob', 'blob', 'mediumblob',
                             'longblob', 'json', 'geometry', 'point', 'linestring', 'polygon'),
         '', CONCAT(', KEY mlbridge_key (`', REPLACE(v_key, '`', '``'), '`)')),
      ') ENGINE=InnoDB COMMENT=''scores of mlbridge.predict_table''');
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET v_created = TRUE;
  END IF;
  -- The caller must be able to write the output; find out now, not after the scoring.
  SET @mlbridge_sql = CONCAT('INSERT INTO ', v_output, ' (`', REPLACE(v_key, '`', '``'),
                             '`, score, output, error, model_version) SELECT NULL, NULL, NULL, NULL, NULL FROM DUAL WHERE FALSE');
  PREPARE mlbridge_stmt FROM @mlbridge_sql;
  EXECUTE mlbridge_stmt;
  DEALLOCATE PREPARE mlbridge_stmt;
  SET @mlbridge_sql = NULL;

  -- An output this call created goes again if queueing fails (a limit reached, say), so that the
  -- same call works once the cause is gone.
  BEGIN
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
      IF v_created THEN
        BEGIN
          DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;
          SET @mlbridge_sql = CONCAT('DROP TABLE IF EXISTS ', v_output);
          PREPARE mlbridge_stmt FROM @mlbridge_sql;
          EXECUTE mlbridge_stmt;
          DEALLOCATE PREPARE mlbridge_stmt;
          SET @mlbridge_sql = NULL;
        END;
      END IF;
      RESIGNAL;
    END;
    CALL _attest();
    CALL _enqueue_predict(CONCAT(v_name, ':', v_version), v_key, p_options, v_output, v_request);
  END;
  IF v_async THEN
    SELECT v_request AS request_id;
  ELSE
    CALL _attest();
    CALL _wait_request(v_request, v_timeout, v_status);
    CALL _write_output(v_request);
    CALL request_status(v_request);
  END IF;
END
