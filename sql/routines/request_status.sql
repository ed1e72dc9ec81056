-- CALL mlbridge.request_status(42)
-- The progress of one of the caller's requests: (request_id, kind, status, model, rows_total,
-- rows_done, rows_failed, percent, progress, error, output, output_written_at, created_at,
-- started_at, finished_at, seconds). `progress` is a JSON object for training jobs (phase, epoch,
-- loss), NULL otherwise.
-- execute: mlbridge_user
CREATE PROCEDURE request_status(IN p_id BIGINT UNSIGNED)
  SQL SECURITY INVOKER
  READS SQL DATA
  COMMENT 'mlbridge: status, progress and timings of one of your requests'
BEGIN
  CALL _no_transaction('request_status');
  CALL _attest();
  CALL _request_status(p_id);
END
