-- CALL mlbridge.model_label_set('churn', 'canary', 4)
-- Point label `canary` of model `churn` at version 4 (created, or moved from another version).
-- Requests for 'churn@canary' are pinned to the version the label names when they are queued; a
-- label moved later does not move them. A label is 1 to 64 letters, digits, `_`, `-` or `.`,
-- and the version must be available. Returns (name, label, version). Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE model_label_set(IN p_model VARCHAR(64), IN p_label VARCHAR(64), IN p_version INT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: point a version label (name@label) at a version'
BEGIN
  DECLARE v_state VARCHAR(16);
  DECLARE v_msg VARCHAR(512);
  IF p_label IS NULL OR p_label NOT REGEXP '^[A-Za-z0-9_.-]{1,64}$' OR p_label REGEXP '^[0-9]+$' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'mlbridge: a label is 1 to 64 letters, digits, _, - or ., and not a number (numbers are versions)';
  END IF;
  CALL _model_version(p_model, p_version, v_state);
  IF v_state <> 'available' THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ', p_model, ':', p_version, ' is ', v_state,
                            '; a label must point at an available version'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  INSERT INTO model_labels (name, label, version) VALUES (p_model, p_label, p_version)
    ON DUPLICATE KEY UPDATE version = VALUES(version);
  SELECT name, label, version FROM model_labels WHERE name = p_model AND label = p_label;
END
