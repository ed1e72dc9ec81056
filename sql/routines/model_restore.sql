-- CALL mlbridge.model_restore('churn', 3)
-- Bring a retired version back: available again (the bridges' next catalog sync sets the state
-- the model server reports). Returns the version's catalog row. Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE model_restore(IN p_model VARCHAR(64), IN p_version INT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: restore a retired model version'
BEGIN
  DECLARE v_state VARCHAR(16);
  DECLARE v_msg VARCHAR(512);
  CALL _model_version(p_model, p_version, v_state);
  IF v_state <> 'retired' THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ', p_model, ':', p_version, ' is ', v_state, ', not retired'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  UPDATE model_versions SET state = 'available', retired_at = NULL WHERE name = p_model AND version = p_version;
  SELECT name, version, state, retired_at FROM model_versions WHERE name = p_model AND version = p_version;
END
