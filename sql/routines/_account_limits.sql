-- Check account p_owner's limits before it queues p_rows more rows (settings
-- max_requests_in_flight and max_rows_in_flight; predict_row's single rows do not count, as each
-- waits on its own connection, which MySQL's max_user_connections bounds), and return the virtual
-- time where its last queued chunk ended (fair claiming, migration 0008). Run inside the
-- transaction that queues the request: it locks the account's own row of `accounts` and no
-- other, so accounts never wait on each other, and one account's concurrent calls are counted
-- one after the other.
CREATE PROCEDURE _account_limits(IN p_owner VARCHAR(400), IN p_rows BIGINT UNSIGNED, OUT o_vtime DOUBLE)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_requests BIGINT UNSIGNED;
  DECLARE v_in_flight BIGINT;
  DECLARE v_max_requests BIGINT;
  DECLARE v_max_rows BIGINT;
  DECLARE v_msg VARCHAR(512);
  SET o_vtime = (SELECT vtime FROM accounts WHERE account = p_owner FOR UPDATE);
  IF o_vtime IS NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: account ', p_owner, ' is not registered: an admin runs `mlbridge db grant ',
                            p_owner, '`'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  SET v_max_requests = (SELECT value + 0 FROM settings WHERE name = 'max_requests_in_flight');
  SET v_max_rows = (SELECT value + 0 FROM settings WHERE name = 'max_rows_in_flight');
  SELECT COUNT(*), COALESCE(SUM(rows_total - rows_done - rows_failed), 0) INTO v_requests, v_in_flight
    FROM requests WHERE owner = p_owner AND status IN ('pending', 'running') AND kind <> 'predict_row';
  IF v_requests + 1 > v_max_requests THEN
    SET v_msg = LEFT(CONCAT('mlbridge: account ', p_owner, ' has ', v_requests, ' requests in flight; the limit is ',
                            v_max_requests, ' (setting max_requests_in_flight): wait for them, or cancel some'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF v_in_flight + p_rows > v_max_rows THEN
    SET v_msg = LEFT(CONCAT('mlbridge: account ', p_owner, ' would have ', v_in_flight + p_rows, ' rows in flight; ',
                            'the limit is ', v_max_rows, ' (setting max_rows_in_flight): queue fewer rows, or wait for ',
                            'your requests'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
