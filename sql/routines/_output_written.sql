-- Mark a predict_table request's output as written, inside the transaction of its owner's
-- session that writes it (_write_output). The row lock makes a second writer wait, and then find
-- it written: the output gets the scores once. The account is _caller's.
-- execute: mlbridge_user
CREATE PROCEDURE _output_written(IN p_id BIGINT UNSIGNED, OUT o_first BOOLEAN)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_owner VARCHAR(400);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  UPDATE requests SET output_written_at = NOW(6) WHERE id = p_id AND output_written_at IS NULL;
  SET o_first = ROW_COUNT() > 0;
END
