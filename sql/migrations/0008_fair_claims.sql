-- mlbridge schema, version 8: accounts share the bridges fairly, and each has limits.
--
-- Each chunk gets a virtual start time when it is queued (start-time fair queuing): the later of
-- where the queue is now (its earliest pending chunk's time at that priority, or the latest time
-- any account reached when none is pending) and where the account's previous chunk ended, plus
-- the rows queued before it in its request. Bridges claim in order of priority, then virtual time, so an account
-- that queued two million rows gets its turn after each chunk of another account's 50-row call,
-- not before all of its own. The per-account limits (settings max_rows_in_flight,
-- max_requests_in_flight) are checked at queue time under a lock of that account's row in
-- `accounts` only, so accounts never wait on each other.
ALTER TABLE predict_queue
  ADD COLUMN vtime DOUBLE NOT NULL DEFAULT 0 COMMENT 'virtual start time: bridges claim in order of priority, then vtime' AFTER priority,
  DROP KEY claim,
  ADD KEY claim (state, priority, vtime, id);

ALTER TABLE accounts
  ADD COLUMN vtime DOUBLE NOT NULL DEFAULT 0 COMMENT 'virtual finish time of the account''s last queued chunk' AFTER role;

ALTER TABLE requests
  ADD KEY owner_status (owner, status);
