-- CALL mlbridge.stream_drop('churn')
-- Drop a trigger stream and its scores. Rows still in the inbox for it are scored as errors
-- ("no stream"), so drop the application's trigger first. Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE stream_drop(IN p_name VARCHAR(64))
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: drop a trigger stream and its scores'
BEGIN
  DECLARE v_msg VARCHAR(512);
  DELETE FROM streams WHERE name = p_name;
  IF ROW_COUNT() = 0 THEN
    SET v_msg = LEFT(CONCAT('mlbridge: there is no stream ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''''), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  REPEAT
    DELETE FROM stream_scores WHERE stream = p_name LIMIT 10000;
  UNTIL ROW_COUNT() < 10000 END REPEAT;
END
