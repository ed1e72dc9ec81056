-- The body of train_model, score_model and explain_model (INVOKER: the caller's query runs with
-- the caller's privileges): check the options, stage the rows, queue the job for the attested
-- account, and either return (request_id) or wait and return the job's result rows.
-- execute: mlbridge_user
CREATE PROCEDURE _run_job(IN p_kind VARCHAR(16), IN p_model VARCHAR(255), IN p_query LONGTEXT,
                          IN p_label VARCHAR(64), IN p_options LONGTEXT, OUT o_request BIGINT UNSIGNED)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_async BOOLEAN;
  DECLARE v_timeout DOUBLE;
  DECLARE v_key VARCHAR(64);
  DECLARE v_mode VARCHAR(16);
  DECLARE v_status VARCHAR(16);
  CALL _no_transaction(CONCAT(p_kind, '_model'));
  CALL _parse_options(p_options, p_kind, v_async, v_timeout, v_key, v_mode);
  CALL _stage_rows(p_query);
  CALL _attest();
  CALL _enqueue_job(p_kind, p_model, p_label, p_query, p_options, o_request);
  IF v_async THEN
    SELECT o_request AS request_id;
  ELSE
    CALL _attest();
    CALL _wait_request(o_request, v_timeout, v_status);
    CALL request_results(o_request);
  END IF;
END
