-- Move the staged rows of {{scratch}}.predict_input into a new request: its rows, the rows that fail
-- before scoring (NULL or repeated keys), and the queue's chunks of up to 1,024 rows. Returns the
-- request id. With autocommit on this is one transaction of its own; with autocommit off (an async
-- call inside the caller's transaction) it joins the caller's, and the bridge sees the request
-- when the caller commits.
CREATE PROCEDURE _enqueue_predict(IN p_name VARCHAR(64), IN p_version INT UNSIGNED, IN p_inputs LONGTEXT,
                                  IN p_key VARCHAR(64), IN p_options LONGTEXT, IN p_priority SMALLINT,
                                  OUT o_request BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_own_tx BOOLEAN DEFAULT (@@autocommit = 1);
  DECLARE v_total BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_failed BIGINT UNSIGNED DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF v_own_tx THEN
      ROLLBACK;
    END IF;
    RESIGNAL;
  END;

  IF v_own_tx THEN
    START TRANSACTION;
  END IF;
  INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, options, status)
    VALUES ('predict', SUBSTRING_INDEX(USER(), '@', 1), p_name, p_version, p_inputs, p_key, p_options, 'pending');
  SET o_request = LAST_INSERT_ID();

  INSERT INTO request_rows (request_id, seq, row_key, features)
    SELECT o_request, seq, row_key, features FROM `{{scratch}}`.`predict_input`;
  SET v_total = ROW_COUNT();

  INSERT INTO results (request_id, seq, row_key, error)
    SELECT request_id, seq, NULL, CONCAT('mlbridge: key column `', p_key, '` is NULL in this row')
      FROM request_rows WHERE request_id = o_request AND row_key IS NULL;
  SET v_failed = ROW_COUNT();
  INSERT INTO results (request_id, seq, row_key, error)
    SELECT r.request_id, r.seq, r.row_key,
           CONCAT('mlbridge: key ', r.row_key, ' repeats in this request (key column `', p_key, '`)')
      FROM request_rows AS r
      JOIN (SELECT row_key FROM request_rows
             WHERE request_id = o_request AND row_key IS NOT NULL
             GROUP BY row_key HAVING COUNT(*) > 1) AS d ON d.row_key = r.row_key
     WHERE r.request_id = o_request;
  SET v_failed = v_failed + ROW_COUNT();

  INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version, priority)
    SELECT o_request, MIN(seq), MAX(seq), p_name, p_version, p_priority
      FROM request_rows WHERE request_id = o_request
     GROUP BY (seq - 1) DIV 1024;

  UPDATE requests
     SET rows_total = v_total, rows_failed = v_failed,
         status = IF(v_failed >= v_total, 'done', 'pending'),
         finished_at = IF(v_failed >= v_total, NOW(6), NULL)
   WHERE id = o_request;
  IF v_own_tx THEN
    COMMIT;
  END IF;
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_input`;
END
