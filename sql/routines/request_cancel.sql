-- CALL mlbridge.request_cancel(42)
-- Stop one of the caller's requests: chunks not yet scored are cancelled (a bridge scoring one
-- now finds its claim gone and writes nothing); rows already scored keep their results. A
-- training job stops at its next epoch and exports nothing. Returns the request's status.
-- execute: mlbridge_user
CREATE PROCEDURE request_cancel(IN p_id BIGINT UNSIGNED)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: cancel one of your requests'
BEGIN
  CALL _no_transaction('request_cancel');
  CALL _attest();
  CALL _request_cancel(p_id);
END
