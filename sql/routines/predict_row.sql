-- CALL mlbridge.predict_row('model', JSON_OBJECT('f1', 1.2, 'f2', 'red'))
-- The online path: one row in, one row (score, output, error) out, in milliseconds. The row is
-- claimed ahead of bulk work (priority 0), and the bridges are woken at once. Every input of the
-- model must be a key of the object, with one value (number, string, true/false, or null where
-- the model takes missing values), and no other key: anything else is refused before queueing.
-- Waits up to the setting predict_row_timeout (seconds); a row that takes longer stays queued
-- and its request id is in the error. INVOKER, to attest the caller's account (_attest); the
-- work is done by the DEFINER _predict_row, which reads no caller data, only its arguments.
-- execute: mlbridge_user
CREATE PROCEDURE predict_row(IN p_model VARCHAR(255), IN p_features LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: score one row given as a JSON object; returns (score, output, error)'
BEGIN
  CALL _attest();
  CALL _predict_row(p_model, p_features);
END
