-- Run the caller's SELECT, with the caller's own privileges (INVOKER), into the session's
-- temporary table {{scratch}}.job_input: every column the query returns, with its name and type,
-- after `_mlbridge_seq` (the row number). A table the caller cannot SELECT fails here with
-- MySQL's own error. The query itself is the caller's; nothing else reaches the statement.
-- execute: mlbridge_user
CREATE PROCEDURE _stage_rows(IN p_query LONGTEXT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_query LONGTEXT;
  CALL _select_text(p_query, v_query);
  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`job_input`;
  SET @mlbridge_stage = CONCAT(
    'CREATE TEMPORARY TABLE `{{scratch}}`.`job_input` (_mlbridge_seq INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY) ',
    '{{staging_engine}} SELECT * FROM (', v_query, '\n) AS mlbridge_q');
  PREPARE mlbridge_stage FROM @mlbridge_stage;
  EXECUTE mlbridge_stage;
  DEALLOCATE PREPARE mlbridge_stage;
  SET @mlbridge_stage = NULL;
END
