-- Refuse to run inside a transaction (p_routine names the caller's routine in the message). The
-- routines queue and wait in transactions of their own, and read the bridge's progress: inside
-- the caller's transaction, the rows they queue would stay invisible to the bridge until COMMIT,
-- a REPEATABLE READ snapshot would hide the progress, and a SERIALIZABLE one would take shared
-- locks that stall the bridge's writes for every account. {{in_transaction}} is
-- @@in_transaction on MariaDB; MySQL 8 has no such variable, so there only autocommit = 0 is
-- caught, and an explicit START TRANSACTION before the CALL goes unnoticed.
-- execute: mlbridge_user
CREATE PROCEDURE _no_transaction(IN p_routine VARCHAR(64))
  SQL SECURITY INVOKER
  NO SQL
BEGIN
  DECLARE v_msg VARCHAR(512);
  IF @@autocommit = 0 OR {{in_transaction}} THEN
    SET v_msg = LEFT(CONCAT('mlbridge: ', p_routine, ' runs outside transactions (an open one would hide the ',
                            'bridge''s progress or hold locks that stall it): COMMIT first and SET autocommit = 1'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
