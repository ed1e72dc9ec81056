-- The account attested for this connection (_attest), taken once: the first statement of every
-- DEFINER routine that a caller may EXECUTE and that acts for an account. The row is deleted as it
-- is read, so each attestation serves one call; it must be fresh (a few seconds) and made by a
-- session of the same login (USER()), so a row left by a failed call serves nobody after
-- COM_CHANGE_USER. A direct call of such a routine, with no attestation, is refused.
CREATE PROCEDURE _caller(OUT o_account VARCHAR(400))
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  SET o_account = (SELECT account FROM attestations
                    WHERE connection_id = CONNECTION_ID() AND login = USER()
                      AND attested_at >= NOW(6) - INTERVAL 5 SECOND);
  DELETE FROM attestations WHERE connection_id = CONNECTION_ID();
  IF o_account IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'mlbridge: this is an inner routine of mlbridge; call the public ones (predict_scores, request_status, ...)';
  END IF;
END
