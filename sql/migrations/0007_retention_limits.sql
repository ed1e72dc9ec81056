-- mlbridge schema, version 7: finished requests are purged after a retention period, and each
-- account has limits on what it keeps in flight.
INSERT IGNORE INTO settings (name, value, description) VALUES
  ('retention_days', '7', 'finished requests, their rows and results are purged this many days after they finish (request_purge)'),
  ('max_rows_in_flight', '2000000', 'rows one account may have queued and not yet scored, over all its requests'),
  ('max_requests_in_flight', '20', 'requests one account may have pending or running at once'),
  ('max_timeout', '3600', 'the longest timeout, in seconds, a waiting call may ask for');
