-- Wait up to p_timeout seconds (default 60) for one of the caller's requests; return its status.
-- A finished predict_table request's output is written here, by the caller's own session and
-- privileges (INVOKER), if it was not written yet.
-- execute: mlbridge_user
CREATE PROCEDURE request_wait(IN p_id BIGINT UNSIGNED, IN p_timeout DOUBLE)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: wait for one of your requests to finish, then return its status'
BEGIN
  DECLARE v_status VARCHAR(16);
  CALL _no_transaction('request_wait');
  CALL _attest();
  CALL _wait_request(p_id, COALESCE(p_timeout, 60), v_status);
  CALL _write_output(p_id);
  CALL request_status(p_id);
END
