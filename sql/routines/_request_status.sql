-- request_status's DEFINER half: the caller's account comes from _caller, never an argument.
-- execute: mlbridge_user
CREATE PROCEDURE _request_status(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  CALL _status_of(p_id);
END
