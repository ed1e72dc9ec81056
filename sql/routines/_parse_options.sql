-- Validate the options JSON of predict_scores and predict_table (p_for); return the values with
-- their defaults. Known keys: async (boolean), timeout (seconds > 0, default 60), key (the key
-- column; default id for predict_scores, the input's primary key (NULL here) for predict_table),
-- and for predict_table mode (error, replace or append: what to do with an existing output).
-- execute: mlbridge_user
CREATE PROCEDURE _parse_options(IN p_options LONGTEXT, IN p_for VARCHAR(32), OUT o_async BOOLEAN,
                                OUT o_timeout DOUBLE, OUT o_key VARCHAR(64), OUT o_mode VARCHAR(16))
  SQL SECURITY INVOKER
  READS SQL DATA
BEGIN
  DECLARE v_keys LONGTEXT;
  DECLARE v_name VARCHAR(255);
  DECLARE v_value LONGTEXT;
  DECLARE v_i INT DEFAULT 0;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_max DOUBLE;

  SET o_async = FALSE, o_timeout = 60, o_key = IF(p_for = 'predict_table', NULL, 'id'), o_mode = 'error';
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
      SET v_value = JSON_EXTRACT(p_options, CONCAT('$."', REPLACE(v_name, '"', '\\"'), '"'));
      IF v_name = 'async' THEN
        IF JSON_TYPE(v_value) <> 'BOOLEAN' THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option async must be true or false';
        END IF;
        SET o_async = (JSON_UNQUOTE(v_value) = 'true');
      ELSEIF v_name = 'timeout' THEN
        IF JSON_TYPE(v_value) NOT IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER')
           OR NOT (JSON_UNQUOTE(v_value) + 0 > 0 AND JSON_UNQUOTE(v_value) + 0 <= v_max) THEN
          SET v_msg = LEFT(CONCAT('mlbridge: option timeout must be a number of seconds above 0 and at most ', v_max,
                                  ' (the max_timeout setting)'), {{message_max}});
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
        END IF;
        SET o_timeout = JSON_UNQUOTE(v_value) + 0;
      ELSEIF v_name = 'key' THEN
        IF JSON_TYPE(v_value) <> 'STRING' OR CHAR_LENGTH(JSON_UNQUOTE(v_value)) NOT BETWEEN 1 AND 64 THEN
          SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mlbridge: option key must name the key column, a string of 1 to 64 characters';
        END IF;
        IF LOCATE(CHAR(0), JSON_UNQUOTE(v_value)) > 0 THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: option key holds a NUL character';
        END IF;
        SET o_key = JSON_UNQUOTE(v_value);
      ELSEIF v_name = 'mode' AND p_for = 'predict_table' THEN
        IF JSON_TYPE(v_value) <> 'STRING' OR JSON_UNQUOTE(v_value) NOT IN ('error', 'replace', 'append') THEN
          SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'mlbridge: option mode must be "error" (the default), "replace" or "append"';
        END IF;
        SET o_mode = JSON_UNQUOTE(v_value);
      ELSE
        SET v_msg = LEFT(CONCAT('mlbridge: unknown option "', LEFT(v_name, 64), '"; known options: async, timeout, key',
                                IF(p_for = 'predict_table', ', mode', '')), {{message_max}});
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
      END IF;
      SET v_i = v_i + 1;
    END WHILE;
  END IF;
END
