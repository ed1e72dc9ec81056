-- CALL mlbridge.score_model('churn', 'SELECT * FROM shop.customers_2026', 'churned', NULL)
-- A model's metrics on labelled rows, computed by a trainer worker: (metric, value) rows, with
-- mae, rmse and r2 for regression; accuracy, precision, recall, f1, roc_auc and log_loss for
-- classification; and `rows`. Waits (options.timeout seconds, default 600) or, with
-- '{"async": true}', returns (request_id) for request_wait and request_results. The model is
-- 'name', 'name:3' or 'name@label'; the query's columns are matched to its inputs by name.
-- Options: key, async, timeout, test_only (only the rows its training split kept for testing).
-- execute: mlbridge_user
CREATE PROCEDURE score_model(IN p_model VARCHAR(255), IN p_query LONGTEXT, IN p_label VARCHAR(64),
                             IN p_options LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: metrics of a model on labelled rows'
BEGIN
  DECLARE v_request BIGINT UNSIGNED;
  CALL _run_job('score', p_model, p_query, p_label, p_options, v_request);
END
