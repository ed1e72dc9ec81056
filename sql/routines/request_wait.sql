-- Wait up to p_timeout seconds (default 60) for one of the caller's requests; return its status.
CREATE PROCEDURE request_wait(IN p_id BIGINT UNSIGNED, IN p_timeout DOUBLE)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: wait for one of your requests to finish, then return its status'
BEGIN
  DECLARE v_status VARCHAR(16);
  IF @@autocommit = 0 OR {{in_transaction}} THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'mlbridge: request_wait needs autocommit on and no open transaction, or it never sees the bridge''s progress: SET autocommit = 1';
  END IF;
  CALL _wait_request(p_id, COALESCE(p_timeout, 60), v_status);
  CALL request_status(p_id);
END
