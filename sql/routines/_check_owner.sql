-- Fail unless request p_id exists and belongs to the calling user (the user name of USER(), the
-- logged-in session, which a DEFINER routine still sees). Another user's request reads as missing.
CREATE PROCEDURE _check_owner(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_msg VARCHAR(512);
  IF p_id IS NULL OR NOT EXISTS (SELECT 1 FROM requests
                                  WHERE id = p_id AND owner = SUBSTRING_INDEX(USER(), '@', 1)) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: no request ', COALESCE(p_id, 'NULL'), ' of user ',
                       SUBSTRING_INDEX(USER(), '@', 1), ' (see your requests with `mlbridge status`)'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
