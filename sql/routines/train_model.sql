-- CALL mlbridge.train_model('churn', 'SELECT id, plan, tenure, churned FROM shop.customers', 'churned', NULL)
-- Train a new version of a model on the rows of a SELECT, asynchronously: returns (request_id) at
-- once, and a trainer worker (`mlbridge trainer`, which `mlbridge up` runs) trains it. The query
-- runs here, with the caller's privileges; its columns are the features and the label, and the
-- key column (options.key, or `id` when present) only splits the rows. Follow it with
-- request_status (progress: phase, epoch, loss), stop it with request_cancel, and read its test
-- metrics with request_results once it is done; the new version is then in mlbridge.models and
-- served without a restart. Options: key, model_type, task, epochs, seed (see _parse_options).
-- execute: mlbridge_user
CREATE PROCEDURE train_model(IN p_model VARCHAR(255), IN p_query LONGTEXT, IN p_label VARCHAR(64),
                             IN p_options LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: train a new model version on a SELECT (async)'
BEGIN
  DECLARE v_request BIGINT UNSIGNED;
  CALL _run_job('train', p_model, p_query, p_label, p_options, v_request);
END
