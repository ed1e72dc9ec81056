-- Wait until request p_id is finished (done, failed or cancelled) or p_timeout seconds pass.
-- Each poll is its own statement, so with autocommit on it sees the bridge's latest commits
-- (one REPEATABLE READ transaction around the loop would never see them). Polls fast at first,
-- then every 100 ms. The account is _caller's: only its own requests can be waited on.
-- execute: mlbridge_user
CREATE PROCEDURE _wait_request(IN p_id BIGINT UNSIGNED, IN p_timeout DOUBLE, OUT o_status VARCHAR(16))
  SQL SECURITY DEFINER
  READS SQL DATA
BEGIN
  DECLARE v_started DATETIME(6) DEFAULT NOW(6);
  DECLARE v_sleep DOUBLE DEFAULT 0.005;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_owner VARCHAR(400);
  DECLARE v_kind VARCHAR(16);
  CALL _caller(v_owner);
  CALL _check_owner(p_id, v_owner);
  IF p_timeout IS NULL OR NOT (p_timeout > 0 AND p_timeout <= (SELECT value + 0 FROM settings WHERE name = 'max_timeout')) THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the timeout must be a number of seconds above 0 and at most ',
                            (SELECT value FROM settings WHERE name = 'max_timeout'), ' (the max_timeout setting)'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  wait_loop: LOOP
    SELECT status, kind INTO o_status, v_kind FROM requests WHERE id = p_id;
    IF o_status IN ('done', 'failed', 'cancelled') THEN
      LEAVE wait_loop;
    END IF;
    IF TIMESTAMPDIFF(MICROSECOND, v_started, NOW(6)) / 1e6 >= p_timeout THEN
      SET v_msg = LEFT(CONCAT('mlbridge: request ', p_id, ' is still ', o_status, ' after ', p_timeout,
                         ' s (is `mlbridge ', IF(v_kind IN ('train', 'score', 'explain'), 'trainer', 'bridge'),
                         '` running?); it stays queued: CALL mlbridge.request_wait(',
                         p_id, ', 60), then mlbridge.request_results(', p_id, ')'), {{message_max}});
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
    END IF;
    DO SLEEP(v_sleep);
    SET v_sleep = LEAST(v_sleep * 2, 0.1);
  END LOOP;
END
