-- Move the staged rows of {{scratch}}.predict_input into a new request: a table of their own,
-- {{data}}.rows_<id>, with the types the caller's SELECT gave them; the rows that fail before
-- scoring (NULL or repeated keys, rows over the max_row_bytes setting) into results; and the
-- queue's chunks. Returns the request id.
--
-- The rows are copied chunk by chunk, each chunk committed with its queue entry and the bridges
-- woken, so that scoring starts with the first chunk while the rest are still being copied. The
-- rows that fail before scoring are found on the staged rows first, and the request's row counts
-- committed, before any chunk is visible. (Each statement names a temporary table once: MySQL
-- cannot open one twice in a statement.)
--
-- Queueing is its own work, never part of the caller's transaction: the rows table is DDL, which
-- would commit the caller's transaction, and locks held by a transaction left open would stall
-- other accounts and the bridge. So it refuses to run inside one. On any error the request, its
-- chunks (a bridge holding one finds its claim gone) and its table go again.
--
-- Callers may CALL it directly (predict_scores and predict_table, being INVOKER, can only hand
-- off to routines their caller may EXECUTE), so it trusts no argument: the owner is the account
-- _attest vouched for, the model is resolved again, options and key are checked as the public
-- routines check them, and kind and priority follow from p_output. A direct call can do no more
-- than predict_scores or predict_table with '{"async": true}' on rows the caller staged.
-- execute: mlbridge_user
CREATE PROCEDURE _enqueue_predict(IN p_model VARCHAR(255), IN p_key VARCHAR(64), IN p_options LONGTEXT,
                                  IN p_output VARCHAR(200), OUT o_request BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  DECLARE v_table VARCHAR(64);
  DECLARE v_rows VARCHAR(200);
  DECLARE v_created BOOLEAN DEFAULT FALSE;
  DECLARE v_text_bytes LONGTEXT DEFAULT NULL;
  DECLARE v_text_key BOOLEAN DEFAULT FALSE;
  DECLARE v_index VARCHAR(32);
  DECLARE v_tried VARCHAR(32);
  DECLARE v_chunk BIGINT UNSIGNED;
  DECLARE v_max_row BIGINT UNSIGNED;
  DECLARE v_max_chunk BIGINT UNSIGNED;
  DECLARE v_widest BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_total BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_failed BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_from BIGINT UNSIGNED DEFAULT 1;
  DECLARE v_copy TEXT;
  DECLARE v_owner VARCHAR(400);
  DECLARE v_async BOOLEAN;
  DECLARE v_timeout DOUBLE;
  DECLARE v_option_key VARCHAR(64);
  DECLARE v_mode VARCHAR(16);
  DECLARE v_msg VARCHAR(512);
  DECLARE v_columns TEXT;
  DECLARE v_priority SMALLINT;
  DECLARE v_now DOUBLE;
  DECLARE v_start DOUBLE;
  DECLARE v_columns_n INT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    IF o_request IS NOT NULL THEN
      DELETE FROM predict_queue WHERE request_id = o_request;
      DELETE FROM results WHERE request_id = o_request;
      DELETE FROM requests WHERE id = o_request;
    END IF;
    IF v_created THEN
      SET @mlbridge_sql = CONCAT('DROP TABLE IF EXISTS ', v_rows);
      PREPARE mlbridge_stmt FROM @mlbridge_sql;
      EXECUTE mlbridge_stmt;
      DEALLOCATE PREPARE mlbridge_stmt;
    END IF;
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_repeats`, `{{scratch}}`.`predict_candidates`,
                                   `{{scratch}}`.`predict_candidates2`;
    SET @mlbridge_sql = NULL;
    RESIGNAL;
  END;

  CALL _caller(v_owner);
  CALL _no_transaction('predict_scores');
  IF p_output IS NOT NULL AND (p_output NOT REGEXP '^`[^`]{1,64}`[.]`[^`]{1,64}`$' OR LOCATE(CHAR(0), p_output) > 0) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the output must be a quoted `db`.`table`';
  END IF;
  CALL _parse_options(p_options, IF(p_output IS NULL, 'predict_scores', 'predict_table'), v_async, v_timeout,
                      v_option_key, v_mode);
  IF p_key IS NULL OR CHAR_LENGTH(p_key) NOT BETWEEN 1 AND 64 OR LOCATE(CHAR(0), p_key) > 0
     OR (v_option_key IS NOT NULL AND p_key <> v_option_key) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the key column must be named by 1 to 64 characters',
                            IF(v_option_key IS NULL, '', CONCAT(', the one options.key names (', v_option_key, ')'))), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  SET v_chunk = (SELECT value + 0 FROM settings WHERE name = 'chunk_rows');
  SET v_max_row = (SELECT value + 0 FROM settings WHERE name = 'max_row_bytes');
  SET v_max_chunk = (SELECT value + 0 FROM settings WHERE name = 'max_chunk_bytes');
  -- The staged rows must be numbered 1..N (seq is their primary key): a table staged by hand
  -- with gaps would queue rows that no chunk covers. Only the model's columns are copied.
  BEGIN
    DECLARE v_first BIGINT UNSIGNED;
    DECLARE v_last BIGINT UNSIGNED;
    -- (no staged table: 1146, or 1142 where the definer falls through to a real table it may not read)
    DECLARE EXIT HANDLER FOR 1142, 1146
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: there are no staged rows to queue: call predict_scores or predict_table';
    SELECT COUNT(*), MIN(seq), MAX(seq) INTO v_total, v_first, v_last FROM `{{scratch}}`.`predict_input`;
    IF v_total > 0 AND (v_first <> 1 OR v_last <> v_total) THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: the staged rows must be numbered 1..N: call predict_scores or predict_table';
    END IF;
  END;
  SET v_columns = 'seq, k';
  WHILE v_columns_n < JSON_LENGTH(v_inputs) DO
    SET v_columns_n = v_columns_n + 1;
    SET v_columns = CONCAT(v_columns, ', i', v_columns_n);
  END WHILE;

  -- The account's limits, checked under a lock of its own row in `accounts` only (so accounts
  -- never wait on each other), in the transaction that queues the request; and its chunks' place
  -- in the fair order (migration 0008): they start at the later of where the queue is now and
  -- where this account's last chunk ended. Where the queue is now: its earliest pending chunk's
  -- time at this priority; with none pending, every account has caught up, and it is the latest
  -- time any account reached (not a chunk's: purged chunks take theirs with them, and a newcomer
  -- starting at 0 would go ahead of everyone for as many rows as they had ever queued).
  SET v_priority = IF(p_output IS NULL, 1, 2);
  SET v_now = COALESCE((SELECT MIN(vtime) FROM predict_queue WHERE state = 'pending' AND priority = v_priority),
                       (SELECT MAX(vtime) FROM accounts), 0);
  START TRANSACTION;
  CALL _account_limits(v_owner, v_total, v_start);
  SET v_start = GREATEST(v_start, v_now);
  UPDATE accounts SET vtime = v_start + v_total WHERE account = v_owner;
  INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, options, output_table, status)
    VALUES (IF(p_output IS NULL, 'predict', 'predict_table'), v_owner, v_name, v_version,
            v_inputs, p_key, p_options, p_output, 'pending');
  SET o_request = LAST_INSERT_ID();
  COMMIT;
  SET v_table = CONCAT('rows_', o_request);
  SET v_rows = CONCAT('`{{data}}`.`', v_table, '`');

  -- The rows table, empty for now, with the staged columns' types and an index on the key
  -- (results are read back in key order). A TEXT or BLOB key is indexed by its first 255
  -- characters, and a key of a type with no index at all (JSON on MySQL) goes without. A key too
  -- long for an index is error 1071 on one server and, on MariaDB 10.11, a note 1071 with the
  -- table created and its index shortened: so the loop ends once the table is there.
  SET v_created = TRUE;
  SET v_index = ', KEY k (k)';
  create_rows: LOOP
    BEGIN
      DECLARE CONTINUE HANDLER FOR 1170 SET v_index = IF(v_index = ', KEY k (k)', ', KEY k (k(255))', '');
      DECLARE CONTINUE HANDLER FOR 1071, 1167, 3152 SET v_index = '';
      SET v_tried = v_index;
      SET @mlbridge_sql = CONCAT('CREATE TABLE ', v_rows, ' (PRIMARY KEY (seq)', v_index, ') ENGINE=InnoDB ',
                                 'SELECT ', v_columns, ' FROM `{{scratch}}`.`predict_input` WHERE FALSE');
      PREPARE mlbridge_stmt FROM @mlbridge_sql;
      EXECUTE mlbridge_stmt;
      DEALLOCATE PREPARE mlbridge_stmt;
    END;
    IF v_index = v_tried OR EXISTS (SELECT 1 FROM information_schema.TABLES
                                     WHERE TABLE_SCHEMA = '{{data}}' AND TABLE_NAME = v_table) THEN
      LEAVE create_rows;
    END IF;
  END LOOP;

  SELECT DATA_TYPE IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'json', 'binary',
                       'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'enum', 'set')
    INTO v_text_key
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{{data}}' AND TABLE_NAME = v_table AND COLUMN_NAME = 'k';
  -- The size of a row is the sum of its text and binary values (numbers are a few bytes each);
  -- only requests that carry such columns pay for measuring it.
  SELECT GROUP_CONCAT(CONCAT('COALESCE(LENGTH(`', COLUMN_NAME, '`), 0)') SEPARATOR ' + ') INTO v_text_bytes
    FROM information_schema.COLUMNS
   WHERE TABLE_SCHEMA = '{{data}}' AND TABLE_NAME = v_table AND COLUMN_NAME REGEXP '^i[0-9]+$'
     AND DATA_TYPE IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'json',
                       'binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'enum', 'set');

  -- Keys that repeat (as the key's collation compares). Text keys are grouped by their first 255
  -- characters (long text sorts by a prefix only), and the rows of such groups compared whole.
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_repeats`, `{{scratch}}`.`predict_candidates`,
                                 `{{scratch}}`.`predict_candidates2`;
  IF v_text_key THEN
    CREATE TEMPORARY TABLE `{{scratch}}`.`predict_repeats` AS
      SELECT LEFT(k, 255) AS p FROM `{{scratch}}`.`predict_input` GROUP BY LEFT(k, 255) HAVING COUNT(*) > 1;
    CREATE TEMPORARY TABLE `{{scratch}}`.`predict_candidates` AS
      SELECT i.seq, i.k FROM `{{scratch}}`.`predict_input` AS i JOIN `{{scratch}}`.`predict_repeats` AS r
          ON LEFT(i.k, 255) = r.p;
    CREATE TEMPORARY TABLE `{{scratch}}`.`predict_candidates2` AS SELECT * FROM `{{scratch}}`.`predict_candidates`;
    DELETE c FROM `{{scratch}}`.`predict_candidates` AS c
     WHERE NOT EXISTS (SELECT 1 FROM `{{scratch}}`.`predict_candidates2` AS o WHERE o.k = c.k AND o.seq <> c.seq);
  ELSE
    CREATE TEMPORARY TABLE `{{scratch}}`.`predict_repeats` AS
      SELECT k FROM `{{scratch}}`.`predict_input` WHERE k IS NOT NULL GROUP BY k HAVING COUNT(*) > 1;
    CREATE TEMPORARY TABLE `{{scratch}}`.`predict_candidates` AS
      SELECT i.seq, i.k FROM `{{scratch}}`.`predict_input` AS i JOIN `{{scratch}}`.`predict_repeats` AS r ON i.k = r.k;
  END IF;

  START TRANSACTION;
  INSERT INTO results (request_id, seq, error)
    SELECT o_request, seq, LEFT(CONCAT('mlbridge: key column `', p_key, '` is NULL in this row'), 500)
      FROM `{{scratch}}`.`predict_input` WHERE k IS NULL;
  SET v_failed = ROW_COUNT();
  INSERT INTO results (request_id, seq, error)
    SELECT o_request, seq, CONCAT('mlbridge: key ', LEFT(k, 100), IF(CHAR_LENGTH(k) > 100, '...', ''),
                                  ' repeats in this request (key column `', p_key, '`)')
      FROM `{{scratch}}`.`predict_candidates`;
  SET v_failed = v_failed + ROW_COUNT();

  IF v_text_bytes IS NOT NULL THEN
    SET @mlbridge_sql = CONCAT(
      'INSERT INTO results (request_id, seq, error) SELECT ', o_request, ', seq, ',
      'CONCAT(''mlbridge: this row holds '', ', v_text_bytes, ', '' bytes of text and binary values; '',',
             '''the limit is '', ', v_max_row, ', '' (mlbridge.settings max_row_bytes)'') ',
      'FROM `{{scratch}}`.`predict_input` AS r WHERE ', v_text_bytes, ' > ', v_max_row,
      ' AND r.k IS NOT NULL AND r.seq NOT IN (SELECT seq FROM `{{scratch}}`.`predict_candidates`)');
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    SET v_failed = v_failed + ROW_COUNT();
    DEALLOCATE PREPARE mlbridge_stmt;
    SET @mlbridge_sql = CONCAT('SELECT COALESCE(MAX(', v_text_bytes, '), 0) INTO @mlbridge_widest ',
                               'FROM `{{scratch}}`.`predict_input` WHERE ', v_text_bytes, ' <= ', v_max_row);
    PREPARE mlbridge_stmt FROM @mlbridge_sql;
    EXECUTE mlbridge_stmt;
    DEALLOCATE PREPARE mlbridge_stmt;
    SET v_widest = @mlbridge_widest;
    -- Chunks hold fewer rows when rows are wide, so that a bridge's chunk stays under max_chunk_bytes.
    SET v_chunk = GREATEST(1, LEAST(v_chunk, v_max_chunk DIV GREATEST(v_widest, 1)));
  END IF;

  UPDATE requests
     SET rows_table = v_table, rows_total = v_total, rows_failed = v_failed,
         status = IF(v_failed >= v_total, 'done', 'pending'),
         finished_at = IF(v_failed >= v_total, NOW(6), NULL)
   WHERE id = o_request;
  COMMIT;
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_repeats`, `{{scratch}}`.`predict_candidates`,
                                 `{{scratch}}`.`predict_candidates2`;

  -- The rows, chunk by chunk: each chunk is claimable as soon as its transaction commits.
  SET v_copy = CONCAT('INSERT INTO ', v_rows, ' SELECT ', v_columns, ' FROM `{{scratch}}`.`predict_input` ',
                      'WHERE seq BETWEEN ? AND ?');
  SET @mlbridge_sql = v_copy;
  PREPARE mlbridge_copy FROM @mlbridge_sql;
  WHILE v_from <= v_total DO
    SET @mlbridge_from = v_from, @mlbridge_to = LEAST(v_from + v_chunk - 1, v_total);
    START TRANSACTION;
    EXECUTE mlbridge_copy USING @mlbridge_from, @mlbridge_to;
    IF v_failed < v_total THEN
      INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version, priority, vtime)
        VALUES (o_request, @mlbridge_from, @mlbridge_to, v_name, v_version, v_priority, v_start + @mlbridge_from - 1);
    END IF;
    COMMIT;
    IF v_failed < v_total THEN
      CALL _wake_bridges();
    END IF;
    SET v_from = v_from + v_chunk;
  END WHILE;
  DEALLOCATE PREPARE mlbridge_copy;
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_input`;
  SET @mlbridge_sql = NULL, @mlbridge_from = NULL, @mlbridge_to = NULL;
END
