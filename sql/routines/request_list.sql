-- CALL mlbridge.request_list(20)
-- The caller's most recent requests, newest first (at most 1000; NULL means 20).
-- execute: mlbridge_user
CREATE PROCEDURE request_list(IN p_limit INT)
  SQL SECURITY INVOKER
  READS SQL DATA
  COMMENT 'mlbridge: your most recent requests and their progress'
BEGIN
  CALL _no_transaction('request_list');
  CALL _attest();
  CALL _request_list(p_limit);
END
