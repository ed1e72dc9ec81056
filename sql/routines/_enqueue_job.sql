-- Queue a train, score or explain job (p_kind) on the rows staged in {{scratch}}.job_input
-- (_stage_rows): the rows move into a table of their own, {{data}}.rows_<id>, with the caller's
-- column names and types, and a job waits for a trainer worker (`mlbridge trainer`). Returns the
-- request id.
--
-- Callers may CALL it directly (the public routines are INVOKER and can only hand off to routines
-- their caller may EXECUTE), so it trusts no argument: the owner is the account _attest vouched
-- for, options are checked again, the model is resolved and pinned (score, explain) or its name
-- checked (train: it names a folder of the model base), and the label and key must be columns of
-- the rows. Nothing is left behind when it fails.
-- execute: mlbridge_user
CREATE PROCEDURE _enqueue_job(IN p_kind VARCHAR(16), IN p_model VARCHAR(255), IN p_label VARCHAR(64),
                              IN p_query LONGTEXT, IN p_options LONGTEXT, OUT o_request BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  DECLARE v_async BOOLEAN;
  DECLARE v_timeout DOUBLE;
  DECLARE v_key VARCHAR(64);
  DECLARE v_mode VARCHAR(16);
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED DEFAULT NULL;
  DECLARE v_inputs LONGTEXT DEFAULT NULL;
  DECLARE v_total BIGINT UNSIGNED;
  DECLARE v_table VARCHAR(64);
  DECLARE v_created BOOLEAN DEFAULT FALSE;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_vtime DOUBLE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    IF o_request IS NOT NULL THEN
      DELETE FROM jobs WHERE request_id = o_request;
      DELETE FROM requests WHERE id = o_request;
    END IF;
    IF v_created THEN
      SET @mlbridge_sql = CONCAT('DROP TABLE IF EXISTS `{{data}}`.`', v_table, '`');
      PREPARE mlbridge_stmt FROM @mlbridge_sql;
      EXECUTE mlbridge_stmt;
      DEALLOCATE PREPARE mlbridge_stmt;
    END IF;
    SET @mlbridge_sql = NULL;
    RESIGNAL;
  END;

  CALL _caller(v_owner);
  CALL _no_transaction(CONCAT(COALESCE(p_kind, 'job'), '_model'));
  IF p_kind IS NULL OR p_kind NOT IN ('train', 'score', 'explain') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: a job is train, score or explain';
  END IF;
  CALL _parse_options(p_options, p_kind, v_async, v_timeout, v_key, v_mode);
  IF p_label IS NULL OR CHAR_LENGTH(p_label) NOT BETWEEN 1 AND 64 OR LOCATE(CHAR(0), p_label) > 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the label must name a column of the query (1 to 64 characters)';
  END IF;
  IF p_query IS NULL OR LENGTH(p_query) > 65535 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the query must be a SELECT of at most 65535 bytes';
  END IF;
  IF p_kind = 'train' THEN
    -- The name is a folder of the model base: letters, digits, _ . - only, and no leading dot.
    IF p_model IS NULL OR p_model NOT REGEXP '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$' THEN
      SET v_msg = LEFT(CONCAT('mlbridge: model name ''', LEFT(COALESCE(p_model, 'NULL'), 80), ''' must be 1 to 64 ',
                              'letters, digits, _, . or -, not starting with . or -'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    SET v_name = p_model;
  ELSE
    CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  END IF;
  BEGIN
    DECLARE EXIT HANDLER FOR 1142, 1146
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: there are no staged rows: call train_model, score_model or explain_model';
    SET v_total = (SELECT COUNT(*) FROM `{{scratch}}`.`job_input`);
  END;
  IF v_total = 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the query returned no rows; check its WHERE clause';
  END IF;

  START TRANSACTION;
  CALL _account_limits(v_owner, v_total, v_vtime);
  INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, options, status, rows_total)
    VALUES (p_kind, v_owner, v_name, v_version, v_inputs, v_key, NULLIF(TRIM(p_options), ''), 'pending', v_total);
  SET o_request = LAST_INSERT_ID();
  COMMIT;
  SET v_table = CONCAT('rows_', o_request);
  SET v_created = TRUE;
  SET @mlbridge_sql = CONCAT('CREATE TABLE `{{data}}`.`', v_table, '` (PRIMARY KEY (_mlbridge_seq)) ENGINE=InnoDB ',
                             'SELECT * FROM `{{scratch}}`.`job_input`');
  PREPARE mlbridge_stmt FROM @mlbridge_sql;
  EXECUTE mlbridge_stmt;
  DEALLOCATE PREPARE mlbridge_stmt;
  SET @mlbridge_sql = NULL;
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`job_input`;

  -- The label (and a key the options name) must be columns of the rows; names compare as MySQL
  -- compares column names, without regard to case.
  IF NOT EXISTS (SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{{data}}' AND TABLE_NAME = v_table
                    AND COLUMN_NAME = p_label AND COLUMN_NAME <> '_mlbridge_seq') THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the label column `', p_label, '` is not among the query''s columns'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF v_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{{data}}'
                                          AND TABLE_NAME = v_table AND COLUMN_NAME = v_key) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the key column `', v_key, '` (options.key) is not among the query''s columns'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  START TRANSACTION;
  UPDATE requests SET rows_table = v_table WHERE id = o_request;
  INSERT INTO jobs (request_id, kind, label, query) VALUES (o_request, p_kind, p_label, p_query);
  COMMIT;
END
