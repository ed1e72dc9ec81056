-- Resolve 'name', 'name:3' or 'name@label' to one available catalog version and its input names
-- (a JSON array, in signature order). A request is pinned to this version when it is queued.
-- Callers may EXECUTE it: it reads only the catalog, which they may read anyway.
-- execute: mlbridge_user
CREATE PROCEDURE _resolve_model(IN p_model VARCHAR(255), OUT o_name VARCHAR(64), OUT o_version INT UNSIGNED,
                                OUT o_inputs LONGTEXT)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_msg VARCHAR(512);
  DECLARE v_label VARCHAR(64) DEFAULT NULL;
  DECLARE v_version_text VARCHAR(64) DEFAULT NULL;
  DECLARE v_state VARCHAR(16);

  IF p_model IS NULL OR TRIM(p_model) = '' THEN
    SIGNAL SQLSTATE '45000'
      SET MESSAGE_TEXT = 'mlbridge: model is empty: pass a model name, ''name:version'' or ''name@label''';
  END IF;
  IF LOCATE('@', p_model) > 0 THEN
    SET o_name = SUBSTRING_INDEX(p_model, '@', 1), v_label = SUBSTRING(p_model, LOCATE('@', p_model) + 1);
  ELSEIF LOCATE(':', p_model) > 0 THEN
    SET o_name = SUBSTRING_INDEX(p_model, ':', 1), v_version_text = SUBSTRING(p_model, LOCATE(':', p_model) + 1);
    IF v_version_text NOT REGEXP '^[0-9]{1,9}$' THEN
      SET v_msg = LEFT(CONCAT('mlbridge: model version in ''', LEFT(p_model, 100), ''' must be a number, as in ''',
                         LEFT(o_name, 64), ':3'''), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
  ELSE
    SET o_name = p_model;
  END IF;

  IF NOT EXISTS (SELECT 1 FROM model_versions WHERE name = o_name) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: no model named ''', LEFT(o_name, 64),
                       ''' in mlbridge.models; train one with `mlbridge train` or pick one from SELECT name, version FROM mlbridge.models'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;

  IF v_label IS NOT NULL THEN
    SET o_version = (SELECT version FROM model_labels WHERE name = o_name AND label = v_label);
    IF o_version IS NULL THEN
      SET v_msg = LEFT(CONCAT('mlbridge: model ''', LEFT(o_name, 64), ''' has no version labelled ''', LEFT(v_label, 64), ''''), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
  ELSEIF v_version_text IS NOT NULL THEN
    SET o_version = v_version_text + 0;
  ELSE
    SET o_version = (SELECT MAX(version) FROM model_versions WHERE name = o_name AND state = 'available');
    IF o_version IS NULL THEN
      SET v_msg = LEFT(CONCAT('mlbridge: model ''', LEFT(o_name, 64), ''' has no available version (see SELECT version, state, error FROM mlbridge.models)'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
  END IF;

  SELECT state, JSON_EXTRACT(inputs, '$[*].name') INTO v_state, o_inputs
    FROM model_versions WHERE name = o_name AND version = o_version;
  IF v_state IS NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ''', LEFT(o_name, 64), ''' has no version ', o_version,
                       ' (see SELECT version FROM mlbridge.models WHERE name = ''', LEFT(o_name, 64), ''')'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF v_state <> 'available' THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ', LEFT(o_name, 64), ':', o_version, ' is ', v_state, ', not available'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF o_inputs IS NULL OR JSON_LENGTH(o_inputs) = 0 THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ', LEFT(o_name, 64), ':', o_version, ' has no inputs in the catalog'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
