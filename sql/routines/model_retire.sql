-- CALL mlbridge.model_retire('churn', 3)
-- Retire a version: it stays in the catalog (state `retired`) but takes no new requests, and
-- 'churn' alone resolves to the newest available version left. Requests already queued for it
-- are still scored. Its files stay in the model base, and the model server keeps it for them;
-- remove the folder to unload it. Refused while a label points at it: move or drop the label
-- first. Returns the version's catalog row. Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE model_retire(IN p_model VARCHAR(64), IN p_version INT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: retire a model version (no new requests)'
BEGIN
  DECLARE v_state VARCHAR(16);
  DECLARE v_label VARCHAR(64);
  DECLARE v_msg VARCHAR(512);
  CALL _model_version(p_model, p_version, v_state);
  SET v_label = (SELECT MIN(label) FROM model_labels WHERE name = p_model AND version = p_version);
  IF v_label IS NOT NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: label ', p_model, '@', v_label, ' points at version ', p_version,
                            ': move it (model_label_set) or drop it (model_label_drop) first'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  UPDATE model_versions SET state = 'retired', retired_at = NOW(6) WHERE name = p_model AND version = p_version;
  SELECT name, version, state, retired_at FROM model_versions WHERE name = p_model AND version = p_version;
END
