-- CALL mlbridge.request_purge(7)
-- Purge finished requests (done, failed or cancelled) that finished more than p_days days ago:
-- their rows, results, queue entries, job and rows table, then the request itself. NULL means
-- the install setting retention_days (the bridges' housekeeping calls it so, every minute).
-- A predict_table output not yet copied into its table is never purged: its owner's
-- request_wait copies it. Works in transactions of at most 10,000 rows, so it never holds many
-- locks for long, and one caller at a time (a user lock). Returns (requests_purged, rows_purged).
-- Purges up to 1000 requests per call; call again while it returns 1000.
-- execute: mlbridge_admin, mlbridge_worker
CREATE PROCEDURE request_purge(IN p_days DOUBLE)
  SQL SECURITY DEFINER
  MODIFIES SQL DATA
  COMMENT 'mlbridge: purge finished requests older than N days (NULL: the retention_days setting)'
BEGIN
  DECLARE v_days DOUBLE;
  DECLARE v_done BOOLEAN DEFAULT FALSE;
  DECLARE v_id BIGINT UNSIGNED;
  DECLARE v_table VARCHAR(64);
  DECLARE v_requests BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_rows BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_n BIGINT UNSIGNED;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_due CURSOR FOR
    SELECT id, rows_table FROM `{{scratch}}`.`purge_due` ORDER BY id;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    DO RELEASE_LOCK('mlbridge_purge');
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`purge_due`;
    RESIGNAL;
  END;

  CALL _no_transaction('request_purge');
  SET v_days = COALESCE(p_days, (SELECT value + 0 FROM settings WHERE name = 'retention_days'), 7);
  IF v_days IS NULL OR v_days < 0 OR v_days > 36500 THEN
    SET v_msg = LEFT(CONCAT('mlbridge: request_purge takes a number of days from 0 to 36500, got ', COALESCE(p_days, 'NULL')), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF NOT GET_LOCK('mlbridge_purge', 0) THEN
    SELECT 0 AS requests_purged, 0 AS rows_purged;
  ELSE
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`purge_due`;
    CREATE TEMPORARY TABLE `{{scratch}}`.`purge_due` ENGINE=MEMORY AS
      SELECT id, rows_table FROM requests
       WHERE status IN ('done', 'failed', 'cancelled')
         AND finished_at < NOW(6) - INTERVAL ROUND(v_days * 86400000000) MICROSECOND
         AND NOT (kind = 'predict_table' AND status IN ('done', 'failed') AND output_written_at IS NULL)
       ORDER BY id LIMIT 1000;
    OPEN v_due;
    purge_loop: LOOP
      FETCH v_due INTO v_id, v_table;
      IF v_done THEN
        LEAVE purge_loop;
      END IF;
      REPEAT
        DELETE FROM results WHERE request_id = v_id LIMIT 10000;
        SET v_n = ROW_COUNT(), v_rows = v_rows + v_n;
      UNTIL v_n < 10000 END REPEAT;
      REPEAT
        DELETE FROM request_rows WHERE request_id = v_id LIMIT 10000;
        SET v_n = ROW_COUNT(), v_rows = v_rows + v_n;
      UNTIL v_n < 10000 END REPEAT;
      REPEAT
        DELETE FROM predict_queue WHERE request_id = v_id LIMIT 10000;
        SET v_n = ROW_COUNT();
      UNTIL v_n < 10000 END REPEAT;
      DELETE FROM online_rows WHERE request_id = v_id;
      DELETE FROM jobs WHERE request_id = v_id;
      IF v_table IS NOT NULL AND v_table REGEXP '^rows_[0-9]+$' THEN
        SET @mlbridge_sql = CONCAT('DROP TABLE IF EXISTS `{{data}}`.`', v_table, '`');
        PREPARE mlbridge_stmt FROM @mlbridge_sql;
        EXECUTE mlbridge_stmt;
        DEALLOCATE PREPARE mlbridge_stmt;
        SET @mlbridge_sql = NULL;
      END IF;
      DELETE FROM requests WHERE id = v_id;
      SET v_requests = v_requests + 1;
    END LOOP;
    CLOSE v_due;
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`purge_due`;
    -- Attestations of calls that failed before they were taken (each serves a few seconds only).
    DELETE FROM attestations WHERE attested_at < NOW(6) - INTERVAL 1 MINUTE;
    DO RELEASE_LOCK('mlbridge_purge');
    SELECT v_requests AS requests_purged, v_rows AS rows_purged;
  END IF;
END
