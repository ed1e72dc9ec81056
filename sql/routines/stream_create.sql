-- CALL mlbridge.stream_create('churn', 'churn@prod')
-- Create (or repoint) a trigger stream: rows that triggers put into mlbridge.inbox with stream
-- 'churn' are scored with the model given ('name', 'name:3' or 'name@label', resolved as each
-- batch is scored), and their latest scores kept in mlbridge.stream_scores. A stream name is 1
-- to 64 letters, digits, _ . or -. See docs/sql.md, "Scoring from triggers". Admins only.
-- execute: mlbridge_admin
CREATE PROCEDURE stream_create(IN p_name VARCHAR(64), IN p_model VARCHAR(255))
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: create a stream of trigger-queued rows scored with a model'
BEGIN
  DECLARE v_name VARCHAR(64);
  DECLARE v_version INT UNSIGNED;
  DECLARE v_inputs LONGTEXT;
  IF p_name IS NULL OR p_name NOT REGEXP '^[A-Za-z0-9_.-]{1,64}$' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'mlbridge: a stream name is 1 to 64 letters, digits, _, . or -';
  END IF;
  CALL _resolve_model(p_model, v_name, v_version, v_inputs);
  INSERT INTO streams (name, model, created_by) VALUES (p_name, p_model, USER())
    ON DUPLICATE KEY UPDATE model = VALUES(model);
  SELECT name, model, v_version AS version_now, v_inputs AS inputs FROM streams WHERE name = p_name;
END
