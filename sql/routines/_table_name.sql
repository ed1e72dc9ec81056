-- Split a table name as callers write it, 'db.table', '`db`.`table`' or 'table' (in the current
-- database), into its schema and table, and return it quoted for dynamic SQL. p_what names the
-- argument in the error.
-- execute: mlbridge_user
CREATE PROCEDURE _table_name(IN p_name VARCHAR(200), IN p_what VARCHAR(16), OUT o_schema VARCHAR(64),
                             OUT o_table VARCHAR(64), OUT o_quoted VARCHAR(200))
  SQL SECURITY INVOKER
  NO SQL
BEGIN
  DECLARE v_name VARCHAR(200) DEFAULT TRIM(COALESCE(p_name, ''));
  DECLARE v_msg VARCHAR(512);
  IF v_name REGEXP '^`[^`]+`[.]`[^`]+`$' THEN
    SET o_schema = SUBSTRING_INDEX(SUBSTRING(v_name, 2), '`', 1);
    SET o_table = SUBSTRING(v_name, CHAR_LENGTH(o_schema) + 5, CHAR_LENGTH(v_name) - CHAR_LENGTH(o_schema) - 5);
  ELSEIF v_name REGEXP '^[^`.[:space:]]+[.][^`.[:space:]]+$' THEN
    SET o_schema = SUBSTRING_INDEX(v_name, '.', 1), o_table = SUBSTRING_INDEX(v_name, '.', -1);
  ELSEIF v_name REGEXP '^`[^`]+`$' THEN
    SET o_schema = DATABASE(), o_table = SUBSTRING(v_name, 2, CHAR_LENGTH(v_name) - 2);
  ELSEIF v_name REGEXP '^[^`.[:space:]]+$' THEN
    SET o_schema = DATABASE(), o_table = v_name;
  ELSE
    SET v_msg = LEFT(CONCAT('mlbridge: ', p_what, ' ''', LEFT(v_name, 100),
                            ''' is not a table name: write it as db.table or `db`.`table`'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF o_schema IS NULL THEN
    SET v_msg = LEFT(CONCAT('mlbridge: ', p_what, ' ''', LEFT(v_name, 100),
                            ''' names no database and none is selected: write it as db.table'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  IF CHAR_LENGTH(o_schema) > 64 OR CHAR_LENGTH(o_table) > 64 THEN
    SET v_msg = LEFT(CONCAT('mlbridge: ', p_what, ' ''', LEFT(v_name, 100), ''': names are at most 64 characters'), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
  SET o_quoted = CONCAT('`', o_schema, '`.`', o_table, '`');
END
