-- predict_row's DEFINER half: checks the features, queues the row for the account _caller names,
-- wakes the bridges and waits for the score.
-- execute: mlbridge_user
CREATE PROCEDURE _predict_row(IN p_model VARCHAR(255), IN p_features LONGTEXT)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  DECLARE v_specs LONGTEXT;
  DECLARE v_keys LONGTEXT;
  DECLARE v_input VARCHAR(255);
  DECLARE v_dtype VARCHAR(32);
  DECLARE v_missing BOOLEAN;
  DECLARE v_value LONGTEXT;
  DECLARE v_type VARCHAR(32);
  DECLARE v_i INT DEFAULT 0;
  DECLARE v_request BIGINT UNSIGNED;
  DECLARE v_timeout DOUBLE;
  DECLARE v_started DATETIME(6) DEFAULT NOW(6);
  DECLARE v_sleep DOUBLE DEFAULT 0.0005;
  DECLARE v_msg VARCHAR(512);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    RESIGNAL;
  END;

  CALL _caller(v_owner);
  CALL _no_transaction('predict_row');
  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  IF p_features IS NULL OR NOT JSON_VALID(p_features) OR JSON_TYPE(p_features) <> 'OBJECT' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'mlbridge: predict_row takes the features as a JSON object, e.g. JSON_OBJECT(''f1'', 1.5, ''f2'', ''red'')';
  END IF;
  IF LENGTH(p_features) > (SELECT value + 0 FROM settings WHERE name = 'max_row_bytes') THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the features take ', LENGTH(p_features), ' bytes; the limit is ',
                            (SELECT value FROM settings WHERE name = 'max_row_bytes'), ' (mlbridge.settings max_row_bytes)'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  SET v_specs = (SELECT inputs FROM model_versions WHERE name = v_name AND version = v_version);

  -- Every input present, with a value the model can take.
  WHILE v_i < JSON_LENGTH(v_specs) DO
    SET v_input = JSON_UNQUOTE(JSON_EXTRACT(v_specs, CONCAT('$[', v_i, '].name')));
    SET v_dtype = COALESCE(JSON_UNQUOTE(JSON_EXTRACT(v_specs, CONCAT('$[', v_i, '].dtype'))), 'float32');
    SET v_missing = COALESCE(JSON_EXTRACT(v_specs, CONCAT('$[', v_i, '].missing')) = TRUE, FALSE);
    SET v_value = JSON_EXTRACT(p_features, CONCAT('$."', REPLACE(REPLACE(v_input, '\\', '\\\\'), '"', '\\"'), '"'));
    IF v_value IS NULL THEN
      SET v_msg = LEFT(CONCAT('mlbridge: feature "', LEFT(v_input, 64), '" is missing; model ', v_name, ':', v_version,
                              ' takes ', LEFT(v_inputs, 300)), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    SET v_type = JSON_TYPE(v_value);
    IF v_type IN ('ARRAY', 'OBJECT') THEN
      SET v_msg = LEFT(CONCAT('mlbridge: feature "', LEFT(v_input, 64), '" is a JSON ', LOWER(v_type),
                              '; pass one value'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF v_type = 'NULL' AND NOT v_missing THEN
      SET v_msg = LEFT(CONCAT('mlbridge: feature "', LEFT(v_input, 64), '" is null, but model ', v_name, ':', v_version,
                              ' needs a value (', v_dtype, ')'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF (v_dtype LIKE 'float%' OR v_dtype LIKE '%int%' OR v_dtype = 'bfloat16') AND v_type NOT IN ('NULL', 'INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL', 'BOOLEAN')
       AND NOT (v_type = 'STRING' AND JSON_UNQUOTE(v_value) REGEXP '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$') THEN
      SET v_msg = LEFT(CONCAT('mlbridge: feature "', LEFT(v_input, 64), '" is ', LEFT(v_value, 40),
                              ', not a number (model input type ', v_dtype, ')'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    SET v_i = v_i + 1;
  END WHILE;
  -- No other key: a misspelt feature must not pass unnoticed.
  SET v_keys = JSON_KEYS(p_features);
  SET v_i = 0;
  WHILE v_i < JSON_LENGTH(v_keys) DO
    SET v_input = JSON_UNQUOTE(JSON_EXTRACT(v_keys, CONCAT('$[', v_i, ']')));
    IF NOT JSON_CONTAINS(v_inputs, JSON_QUOTE(v_input)) THEN
      SET v_msg = LEFT(CONCAT('mlbridge: model ', v_name, ':', v_version, ' has no input "', LEFT(v_input, 64),
                              '"; its inputs: ', LEFT(v_inputs, 300)), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    SET v_i = v_i + 1;
  END WHILE;

  START TRANSACTION;
  INSERT INTO requests (kind, owner, model_name, model_version, inputs, status, rows_total)
    VALUES ('predict_row', v_owner, v_name, v_version, v_inputs, 'pending', 1);
  SET v_request = LAST_INSERT_ID();
  INSERT INTO online_rows (request_id, features) VALUES (v_request, p_features);
  INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version, priority)
    VALUES (v_request, 1, 1, v_name, v_version, 0);
  COMMIT;
  CALL _wake_bridges();

  SET v_timeout = COALESCE((SELECT value + 0 FROM settings WHERE name = 'predict_row_timeout'), 10);
  wait_loop: LOOP
    IF EXISTS (SELECT 1 FROM results WHERE request_id = v_request) THEN
      LEAVE wait_loop;
    END IF;
    IF TIMESTAMPDIFF(MICROSECOND, v_started, NOW(6)) / 1e6 >= v_timeout THEN
      SET v_msg = LEFT(CONCAT('mlbridge: no score after ', v_timeout, ' s (is `mlbridge bridge` running?); the row stays ',
                              'queued as request ', v_request, ': CALL mlbridge.request_wait(', v_request, ', 60)'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    -- A score usually comes within a few milliseconds: look every half millisecond for the first
    -- 50 ms (a growing sleep would oversleep it), then back off to every 5 ms.
    DO SLEEP(v_sleep);
    IF TIMESTAMPDIFF(MICROSECOND, v_started, NOW(6)) > 50000 THEN
      SET v_sleep = LEAST(v_sleep * 1.5, 0.005);
    END IF;
  END LOOP;
  -- (a model whose only output is its score has no output stored: it is made from the score)
  SELECT r.score,
         COALESCE(r.output, IF(r.error IS NULL AND r.score IS NOT NULL,
                               JSON_OBJECT((SELECT score_output FROM model_versions WHERE name = v_name AND version = v_version),
                                           r.score), NULL)) AS output,
         r.error
    FROM results AS r WHERE r.request_id = v_request;
END
