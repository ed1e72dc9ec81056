-- CALL mlbridge.model_label_drop('churn', 'canary')
-- Remove a version label. Requests already queued for it keep their version. Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE model_label_drop(IN p_model VARCHAR(64), IN p_label VARCHAR(64))
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: remove a version label'
BEGIN
  DECLARE v_msg VARCHAR(512);
  DELETE FROM model_labels WHERE name = p_model AND label = p_label;
  IF ROW_COUNT() = 0 THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ''', LEFT(COALESCE(p_model, 'NULL'), 64), ''' has no label ''',
                            LEFT(COALESCE(p_label, 'NULL'), 64), ''''), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
