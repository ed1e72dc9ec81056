-- request_cancel's DEFINER half.
-- execute: mlbridge_user
CREATE PROCEDURE _request_cancel(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  UPDATE predict_queue SET state = 'cancelled', owner = NULL, lease_expires_at = NULL, finished_at = NOW(6)
   WHERE request_id = p_id AND state IN ('pending', 'running');
  UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, finished_at = NOW(6)
   WHERE request_id = p_id AND state IN ('pending', 'running');
  UPDATE requests SET status = 'cancelled', finished_at = NOW(6)
   WHERE id = p_id AND status IN ('pending', 'running');
  CALL _status_of(p_id);
END
