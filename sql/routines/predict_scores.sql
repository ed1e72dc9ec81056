-- CALL mlbridge.predict_scores('model', 'SELECT id, f1, f2 FROM db.t', NULL)
-- Scores every row of the caller's SELECT with a model ('name', 'name:3' or 'name@label'): the
-- query's columns are matched to the model's inputs by name, the key column is `id` unless
-- options.key names another. Waits for the bridge (options.timeout seconds, default 60) and returns
-- (row_key, score, output, error) per row; with '{"async": true}' returns (request_id) at once.
-- INVOKER: the query runs with the caller's privileges; the DEFINER routines it calls only move
-- the staged rows into the queue and read back the caller's own results, for the account that
-- _attest vouches for.
-- execute: mlbridge_user
CREATE PROCEDURE predict_scores(IN p_model VARCHAR(255), IN p_query LONGTEXT, IN p_options LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: score the rows of a SELECT with a model'
BEGIN
  DECLARE v_async BOOLEAN;
  DECLARE v_timeout DOUBLE;
  DECLARE v_key VARCHAR(64);
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  DECLARE v_request BIGINT UNSIGNED;
  DECLARE v_status VARCHAR(16);
  DECLARE v_mode VARCHAR(16);

  SET p_options = NULLIF(TRIM(p_options), '');
  CALL _no_transaction('predict_scores');
  CALL _parse_options(p_options, 'predict_scores', v_async, v_timeout, v_key, v_mode);
  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  CALL _stage_query(p_query, v_key, v_inputs, CONCAT(v_name, ':', v_version));
  CALL _attest();
  CALL _enqueue_predict(CONCAT(v_name, ':', v_version), v_key, p_options, NULL, v_request);
  IF v_async THEN
    SELECT v_request AS request_id;
  ELSE
    CALL _attest();
    CALL _wait_request(v_request, v_timeout, v_status);
    CALL request_results(v_request);
  END IF;
END
