-- CALL mlbridge.request_results(42)
-- The scored rows of one of the caller's requests, in key order, each key with the type the
-- caller's SELECT gave it (read from the request's rows table; requests queued before typed rows
-- keep the key's text in request_rows). `output` holds every output of the model as JSON; for a
-- model whose only output is its score the bridge stores none, and it is made here from the score.
-- Results stay readable until the request is purged (the setting retention_days).
-- execute: mlbridge_user
CREATE PROCEDURE request_results(IN p_id BIGINT UNSIGNED)
  SQL SECURITY INVOKER
  READS SQL DATA
  COMMENT 'mlbridge: (row_key, score, output, error) for every row of one of your requests'
BEGIN
  CALL _no_transaction('request_results');
  CALL _attest();
  CALL _request_results(p_id);
END
