-- Attest the caller's account for the DEFINER routine called next. Inside a DEFINER routine
-- CURRENT_USER() is the definer, and USER() is only the name the client typed (an anonymous
-- account can type any), so the public routines are INVOKER and call this first: it calls the
-- account's own attestation routine, `_as_<first 40 hex digits of SHA2(account, 256)>`, which
-- `mlbridge db grant` creates and lets only that account EXECUTE, and which records
-- (CONNECTION_ID(), account) for the DEFINER routine to take (_caller). Another account cannot
-- run it (error 1370), so no session can pass for another.
-- execute: mlbridge_user
CREATE PROCEDURE _attest()
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_account VARCHAR(400) DEFAULT CURRENT_USER();
  DECLARE v_msg VARCHAR(512);
  DECLARE EXIT HANDLER FOR 1305, 1370
  BEGIN
    SET @mlbridge_attest = NULL;
    SET v_msg = LEFT(CONCAT('mlbridge: account ', v_account, ' is not registered with mlbridge: an admin runs ',
                            '`mlbridge db grant ', v_account, '` (it grants the role mlbridge_user as well)'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END;
  IF v_account IS NULL OR v_account LIKE '@%' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'mlbridge: anonymous accounts cannot use mlbridge (requests belong to accounts): log in with a named account';
  END IF;
  SET @mlbridge_attest = CONCAT('CALL `{{schema}}`.`_as_', LEFT(SHA2(v_account, 256), 40), '`()');
  PREPARE mlbridge_attest FROM @mlbridge_attest;
  EXECUTE mlbridge_attest;
  DEALLOCATE PREPARE mlbridge_attest;
  SET @mlbridge_attest = NULL;
END
