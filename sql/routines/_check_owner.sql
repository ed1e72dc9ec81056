-- Fail unless request p_id exists and belongs to account p_owner (taken by the calling routine
-- from _caller, never from a caller's argument). Another account's request reads as missing.
CREATE PROCEDURE _check_owner(IN p_id BIGINT UNSIGNED, IN p_owner VARCHAR(400))
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_msg VARCHAR(512);
  IF p_id IS NULL OR NOT EXISTS (SELECT 1 FROM requests WHERE id = p_id AND owner = p_owner) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: no request ', COALESCE(p_id, 'NULL'), ' of account ', p_owner,
                            ' (see your requests with CALL mlbridge.request_list(20))'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
