-- Validate the options JSON of a routine (p_for: predict_scores, predict_table, train, score or
-- explain); return the values the routines use, with their defaults. The keys each one knows:
--   key         all: the key column. Default `id` for predict_scores; for predict_table the
--               input's primary key, for the jobs `id` where the query has one (NULL here)
--   async       all but train (which always is): return (request_id) at once
--   timeout     all but train: seconds to wait, above 0 and at most the max_timeout setting;
--               default 60, and 600 for score and explain
--   mode        predict_table: error (default), replace or append: what to do with an existing output
--   model_type  train: auto (default), linear, mlp or gbt
--   task        train: regression, binary or multiclass (default: from the label)
--   epochs      train: the most epochs for the networks, 1 to 10000
--   seed        train, explain: an integer, for the same model or shuffles again
--   test_only   score, explain: true to use only the rows the trainer's split kept for testing
-- The trainer worker reads a job's options from its request, so what is stored is what was checked.
-- execute: mlbridge_user
CREATE PROCEDURE _parse_options(IN p_options LONGTEXT, IN p_for VARCHAR(32), OUT o_async BOOLEAN,
                                OUT o_timeout DOUBLE, OUT o_key VARCHAR(64), OUT o_mode VARCHAR(16))
  SQL SECURITY INVOKER
  READS SQL DATA
BEGIN
  DECLARE v_keys LONGTEXT;
  DECLARE v_name VARCHAR(255);
  DECLARE v_value LONGTEXT;
  DECLARE v_type VARCHAR(32);
  DECLARE v_i INT DEFAULT 0;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_max DOUBLE;

  SET o_async = (p_for = 'train'), o_timeout = IF(p_for IN ('score', 'explain'), 600, 60),
      o_key = IF(p_for = 'predict_scores', 'id', NULL), o_mode = 'error';
  SET v_max = COALESCE((SELECT value + 0 FROM settings WHERE name = 'max_timeout'), 3600);
  IF p_options IS NOT NULL AND TRIM(p_options) NOT IN ('', 'null') THEN
    IF LENGTH(p_options) > 4096 THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: options are longer than 4096 bytes';
    END IF;
    IF NOT JSON_VALID(p_options) THEN
      SET v_msg = LEFT(CONCAT('mlbridge: options are not valid JSON: ', LEFT(p_options, 80),
                         ' (write them as a JSON object, e.g. ''{"async": true}'')'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    IF JSON_TYPE(p_options) <> 'OBJECT' THEN
      SIGNAL SQLSTATE '45000'
        SET MESSAGE_TEXT = 'mlbridge: options must be a JSON object, e.g. ''{"async": true, "timeout": 30}''';
    END IF;
    SET v_keys = JSON_KEYS(p_options);
    WHILE v_i < JSON_LENGTH(v_keys) DO
      SET v_name = JSON_UNQUOTE(JSON_EXTRACT(v_keys, CONCAT('$[', v_i, ']')));
      SET v_value = JSON_EXTRACT(p_options, CONCAT('$."', REPLACE(REPLACE(v_name, '\\', '\\\\'), '"', '\\"'), '"'));
      SET v_type = JSON_TYPE(v_value);
      IF v_name = 'key' THEN
        IF v_type <> 'STRING' OR CHAR_LENGTH(JSON_UNQUOTE(v_value)) NOT BETWEEN 1 AND 64 THEN
          SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mlbridge: option key must name the key column, a string of 1 to 64 characters';
        END IF;
        IF LOCATE(CHAR(0), JSON_UNQUOTE(v_value)) > 0 THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option key holds a NUL character';
        END IF;
        SET o_key = JSON_UNQUOTE(v_value);
      ELSEIF v_name = 'async' AND p_for <> 'train' THEN
        IF v_type <> 'BOOLEAN' THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option async must be true or false';
        END IF;
        SET o_async = (JSON_UNQUOTE(v_value) = 'true');
      ELSEIF v_name = 'timeout' AND p_for <> 'train' THEN
        IF v_type NOT IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER')
           OR NOT (JSON_UNQUOTE(v_value) + 0 > 0 AND JSON_UNQUOTE(v_value) + 0 <= v_max) THEN
          SET v_msg = LEFT(CONCAT('mlbridge: option timeout must be a number of seconds above 0 and at most ', v_max,
                                  ' (the max_timeout setting)'), {{message_max}});
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
        END IF;
        SET o_timeout = JSON_UNQUOTE(v_value) + 0;
      ELSEIF v_name = 'mode' AND p_for = 'predict_table' THEN
        IF v_type <> 'STRING' OR JSON_UNQUOTE(v_value) NOT IN ('error', 'replace', 'append') THEN
          SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mlbridge: option mode must be "error" (the default), "replace" or "append"';
        END IF;
        SET o_mode = JSON_UNQUOTE(v_value);
      ELSEIF v_name = 'model_type' AND p_for = 'train' THEN
        IF v_type <> 'STRING' OR JSON_UNQUOTE(v_value) NOT IN ('auto', 'linear', 'mlp', 'gbt') THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option model_type must be "auto", "linear", "mlp" or "gbt"';
        END IF;
      ELSEIF v_name = 'task' AND p_for = 'train' THEN
        IF v_type <> 'STRING' OR JSON_UNQUOTE(v_value) NOT IN ('regression', 'binary', 'multiclass') THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option task must be "regression", "binary" or "multiclass"';
        END IF;
      ELSEIF v_name = 'epochs' AND p_for = 'train' THEN
        IF v_type NOT IN ('INTEGER', 'UNSIGNED INTEGER') OR NOT (v_value + 0 BETWEEN 1 AND 10000) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option epochs must be a whole number from 1 to 10000';
        END IF;
      ELSEIF v_name = 'seed' AND p_for IN ('train', 'explain') THEN
        IF v_type NOT IN ('INTEGER', 'UNSIGNED INTEGER') OR NOT (v_value + 0 BETWEEN 0 AND 2147483647) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option seed must be a whole number from 0 to 2147483647';
        END IF;
      ELSEIF v_name = 'test_only' AND p_for IN ('score', 'explain') THEN
        IF v_type <> 'BOOLEAN' THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option test_only must be true or false';
        END IF;
      ELSE
        SET v_msg = LEFT(CONCAT('mlbridge: unknown option "', LEFT(v_name, 64), '"; known options: key',
                                CASE p_for WHEN 'predict_scores' THEN ', async, timeout'
                                           WHEN 'predict_table' THEN ', async, timeout, mode'
                                           WHEN 'train' THEN ', model_type, task, epochs, seed'
                                           WHEN 'score' THEN ', async, timeout, test_only'
                                           ELSE ', async, timeout, test_only, seed' END), {{message_max}});
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
      END IF;
      SET v_i = v_i + 1;
    END WHILE;
  END IF;
END
