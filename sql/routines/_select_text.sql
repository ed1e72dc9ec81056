-- The caller's query as it will be run: trailing semicolons and blanks that a person types at a
-- prompt taken off, and refused unless it is a SELECT (or WITH ... SELECT). Nothing else is
-- checked here: the query runs with the caller's privileges, and MySQL's PREPARE takes one
-- statement only, so `SELECT 1; DROP TABLE t` fails as a syntax error.
-- execute: mlbridge_user
CREATE PROCEDURE _select_text(IN p_query LONGTEXT, OUT o_query LONGTEXT)
  SQL SECURITY INVOKER
  NO SQL
BEGIN
  DECLARE v_msg VARCHAR(512);
  SET o_query = TRIM(p_query);
  WHILE CHAR_LENGTH(o_query) > 0 AND RIGHT(o_query, 1) IN (';', ' ', '\n', '\r', '\t') DO
    SET o_query = LEFT(o_query, CHAR_LENGTH(o_query) - 1);
  END WHILE;
  IF o_query IS NULL OR UPPER(o_query) NOT REGEXP '^[([:space:]]*(SELECT|WITH)([^A-Z0-9_$]|$)' THEN
    SET v_msg = LEFT(CONCAT('mlbridge: the query must be a SELECT statement, got: ', LEFT(COALESCE(p_query, 'NULL'), 80)), {{message_max}});
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_msg;
  END IF;
END
