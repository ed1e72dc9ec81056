-- The scored rows of one of the caller's requests, in the order of its query.
CREATE PROCEDURE request_results(IN p_id BIGINT UNSIGNED)
  SQL SECURITY DEFINER
  READS SQL DATA
  COMMENT 'mlbridge: (row_key, score, output, error) for every row of one of your requests'
BEGIN
  CALL _check_owner(p_id);
  SELECT row_key, score, output, error FROM results WHERE request_id = p_id ORDER BY seq;
END
