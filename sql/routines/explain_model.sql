-- CALL mlbridge.explain_model('churn', 'SELECT * FROM shop.customers_2026', 'churned', NULL)
-- Permutation importance of each input column on labelled rows: (column, importance, std), most
-- important first. Importance is how much the model's headline metric (auc for binary, accuracy
-- for multi-class, r2 for regression) drops when that column's values are shuffled between rows,
-- averaged over three shuffles. At most 100,000 rows are used (a sample by the key's hash).
-- Waits or runs async like score_model. Options: key, async, timeout, test_only, seed.
-- execute: mlbridge_user
CREATE PROCEDURE explain_model(IN p_model VARCHAR(255), IN p_query LONGTEXT, IN p_label VARCHAR(64),
                               IN p_options LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: permutation importance of each input column'
BEGIN
  DECLARE v_request BIGINT UNSIGNED;
  CALL _run_job('explain', p_model, p_query, p_label, p_options, v_request);
END
