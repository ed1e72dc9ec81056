-- Stop one of the caller's requests: chunks not yet scored are cancelled (a bridge scoring one
-- now finds its claim gone and writes nothing); rows already scored keep their results.
CREATE PROCEDURE request_cancel(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: cancel one of your requests'
BEGIN
  CALL _check_owner(p_id);
  UPDATE predict_queue SET state = 'cancelled', owner = NULL, lease_expires_at = NULL, finished_at = NOW(6)
   WHERE request_id = p_id AND state IN ('pending', 'running');
  UPDATE requests SET status = 'cancelled', finished_at = NOW(6)
   WHERE id = p_id AND status IN ('pending', 'running');
  CALL request_status(p_id);
END
