-- Run the caller's SELECT, with the caller's own privileges (SQL SECURITY INVOKER), into the
-- session's temporary table {{scratch}}.predict_input (seq, k, i1..iN): the row number, the key,
-- and the model's inputs in catalog order, every value with the type the SELECT gave it (no conversion here: the bridge converts
-- each value and fails only the row whose value does not fit). A table the caller cannot SELECT
-- fails here with MySQL's own error. Column names are quoted; the query itself is the caller's.
-- execute: mlbridge_user
CREATE PROCEDURE _stage_query(IN p_query LONGTEXT, IN p_key VARCHAR(64), IN p_inputs LONGTEXT,
                              IN p_model VARCHAR(255))
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
BEGIN
  DECLARE v_query LONGTEXT;
  DECLARE v_features LONGTEXT DEFAULT '';
  DECLARE v_names TEXT DEFAULT '';
  DECLARE v_name VARCHAR(255);
  DECLARE v_i INT DEFAULT 0;
  DECLARE v_msg VARCHAR(512);
  DECLARE v_missing VARCHAR(255);
  DECLARE v_key TEXT;

  -- A column the model needs that the query lacks: say which, in mlbridge's words. Any other
  -- unknown column is in the caller's own query, and MySQL's message passes through.
  DECLARE EXIT HANDLER FOR 1054
  BEGIN
    GET DIAGNOSTICS CONDITION 1 v_msg = MESSAGE_TEXT;
    SET @mlbridge_stage = NULL;
    DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_input`;
    IF LOCATE('''mlbridge_q.', v_msg) = 0 THEN
      RESIGNAL;
    END IF;
    SET v_missing = SUBSTRING_INDEX(SUBSTRING(v_msg, LOCATE('''mlbridge_q.', v_msg) + 12), '''', 1);
    IF v_missing = p_key THEN
      SET v_msg = LEFT(CONCAT('mlbridge: the query has no key column `', LEFT(p_key, 64),
                         '`: select it, or name the key column with options ''{"key": "column"}'''), {{message_max}});
    ELSE
      SET v_msg = LEFT(CONCAT('mlbridge: the query has no column `', LEFT(v_missing, 64), '`, an input of model ',
                         LEFT(p_model, 80), ' (inputs: ', LEFT(v_names, 250), ')'), {{message_max}});
    END IF;
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END;

  CALL _select_text(p_query, v_query);

  WHILE v_i < JSON_LENGTH(p_inputs) DO
    SET v_name = JSON_UNQUOTE(JSON_EXTRACT(p_inputs, CONCAT('$[', v_i, ']')));
    SET v_features = CONCAT(v_features, ', mlbridge_q.`', REPLACE(v_name, '`', '``'), '` AS i', v_i + 1);
    SET v_names = CONCAT(v_names, IF(v_i > 0, ', ', ''), v_name);
    SET v_i = v_i + 1;
  END WHILE;

  DROP TEMPORARY TABLE IF EXISTS `{{scratch}}`.`predict_input`;
  -- Rows are numbered as the query returns them (no sort: repeated keys are found afterwards,
  -- through the rows table's index on the key). {{staging_engine}} is Aria on MariaDB, which
  -- takes a bulk insert into a temporary table faster than InnoDB, and the default on MySQL.
  SET v_key = CONCAT('mlbridge_q.`', REPLACE(p_key, '`', '``'), '`');
  SET @mlbridge_stage = CONCAT(
    'CREATE TEMPORARY TABLE `{{scratch}}`.`predict_input` (seq INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY) ',
    '{{staging_engine}} SELECT ', v_key, ' AS k', v_features, ' FROM (', v_query, '\n) AS mlbridge_q');
  PREPARE mlbridge_stage FROM @mlbridge_stage;
  EXECUTE mlbridge_stage;
  DEALLOCATE PREPARE mlbridge_stage;
  SET @mlbridge_stage = NULL;
END
