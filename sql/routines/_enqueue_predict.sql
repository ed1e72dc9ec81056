-- Move the staged rows of {{scratch}}.predict_input into a new request: its rows, the rows that fail
-- before scoring (NULL or repeated keys), and the queue's chunks of up to 1,024 rows. Returns the
-- request id. With autocommit on this is one transaction of its own; with autocommit off (an async
-- call inside the caller's transaction) it joins the caller's, and the bridge sees the request
-- when the caller commits. Callers may CALL it directly (they hold EXECUTE on the schema): it
-- resolves the model itself and fixes the priority, so a direct call can do no more than
-- predict_scores with '{"async": true}' on rows the caller staged.
CREATE PROCEDURE _enqueue_predict(IN p_model VARCHAR(255), IN p_key VARCHAR(64), IN p_options LONGTEXT,
                                  OUT o_request BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_own_tx BOOLEAN DEFAULT (@@autocommit = 1);
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  DECLARE v_total BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_failed BIGINT UNSIGNED DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF v_own_tx THEN
      ROLLBACK;
    END IF;
    RESIGNAL;
  END;

  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  IF v_own_tx THEN
    START TRANSACTION;
  END IF;
  INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, options, status)
    VALUES ('predict', SUBSTRING_INDEX(USER(), '@', 1), v_name, v_version, v_inputs, p_key, p_options, 'pending');
  SET o_request = LAST_INSERT_ID();

  INSERT INTO request_rows (request_id, seq, row_key, features)
    SELECT o_request, seq, row_key, features FROM `{{scratch}}`.`predict_input`;
  SET v_total = ROW_COUNT();

  INSERT INTO results (request_id, seq, row_key, error)
    SELECT o_request, seq, row_key,
           IF(row_key IS NULL, CONCAT('mlbridge: key column `', p_key, '` is NULL in this row'),
              CONCAT('mlbridge: key ', row_key, ' repeats in this request (key column `', p_key, '`)'))
      FROM `{{scratch}}`.`predict_input` WHERE row_key IS NULL OR repeated;
  SET v_failed = ROW_COUNT();

  INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version, priority)
    SELECT o_request, MIN(seq), MAX(seq), v_name, v_version, 1
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
