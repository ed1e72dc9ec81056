-- Check that model p_name has version p_version in the catalog (for the admin routines).
CREATE PROCEDURE _model_version(IN p_name VARCHAR(64), IN p_version INT UNSIGNED, OUT o_state VARCHAR(16))
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_msg VARCHAR(512);
  SET o_state = (SELECT state FROM model_versions WHERE name = p_name AND version = p_version);
  IF o_state IS NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: model ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''' has no version ',
                            COALESCE(p_version, 'NULL'), ' (see SELECT name, version, state FROM mlbridge.models)'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
