-- Wake the bridges parked on the queue, so new work is claimed in about a millisecond instead of
-- at the bridge's next poll. A bridge waiting for work registers its parked connection in
-- bridge_wakeups and runs `SELECT IF(woken, 2, GET_LOCK(...)) /* mlbridge_wake */ ...` on it (a
-- wait for a lock its other connection holds: see client/mlbridge/bridge/wakeup.py); this sets
-- `woken` (so a bridge about to wait does not) and ends the wait with KILL QUERY. Only a
-- connection that is running that very statement is killed, never another session that took over
-- a stale connection id. Needs PROCESS and CONNECTION ADMIN for the definer (granted by
-- `mlbridge db install`); without them, or on any error, nothing happens and bridges poll.
CREATE PROCEDURE _wake_bridges()
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_done BOOLEAN DEFAULT FALSE;
  DECLARE v_id BIGINT UNSIGNED;
  DECLARE v_parked CURSOR FOR
    SELECT p.ID FROM information_schema.PROCESSLIST AS p
      JOIN bridge_wakeups AS w ON w.connection_id = p.ID
     WHERE p.INFO LIKE 'SELECT IF(woken, 2, GET_LOCK(%mlbridge_wake%';
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN END;

  IF NOT EXISTS (SELECT 1 FROM bridge_wakeups WHERE NOT woken) THEN
    SET v_done = TRUE;
  ELSE
    UPDATE bridge_wakeups SET woken = TRUE WHERE NOT woken;
  END IF;
  IF NOT v_done THEN
    OPEN v_parked;
    wake: LOOP
      FETCH v_parked INTO v_id;
      IF v_done THEN
        LEAVE wake;
      END IF;
      SET @mlbridge_sql = CONCAT('KILL QUERY ', v_id);
      PREPARE mlbridge_stmt FROM @mlbridge_sql;
      EXECUTE mlbridge_stmt;
      DEALLOCATE PREPARE mlbridge_stmt;
    END LOOP;
    CLOSE v_parked;
    SET @mlbridge_sql = NULL;
  END IF;
END
