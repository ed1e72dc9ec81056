-- Named queries of the bridge and the trainer. Each sits under a `-- name: NAME` header with a
-- one-line description; mlbridge.db.query(NAME) returns it. Placeholders are %s (mysql-connector).

-- name: record_model_version
-- The trainer records a version it exported (the bridge's server sync never overwrites these fields).
-- trained_by is the job's owner for train_model, else the account of the trainer's own session.
-- (`AS new` instead of VALUES(): VALUES() in ON DUPLICATE KEY UPDATE is deprecated on MySQL 8.0.20+,
-- but MariaDB has no row alias, so VALUES() stays, the form both accept.)
INSERT INTO model_versions (name, version, state, task, model_type, inputs, outputs, score_output, label, metrics,
                            trained_on, trained_by, source)
VALUES (%s, %s, 'available', %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, CURRENT_USER()), 'trainer')
ON DUPLICATE KEY UPDATE state = 'available', task = VALUES(task), model_type = VALUES(model_type), inputs = VALUES(inputs),
  outputs = VALUES(outputs), score_output = VALUES(score_output), label = VALUES(label),
  metrics = VALUES(metrics), trained_on = VALUES(trained_on), trained_by = VALUES(trained_by), source = 'trainer',
  error = NULL, retired_at = NULL;

-- name: max_model_version
-- The newest version the catalog knows of a model (the trainer numbers past it and the disk).
SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE name = %s;

-- ---------------------------------------------------------------------------------------------
-- The bridge. A chunk is claimed in one short transaction, scored with no lock held, and closed
-- in the transaction that writes its results, only while this bridge's claim still holds.

-- name: claim_select
-- Lock up to N claimable chunks of priorities lo..hi, skipping those another bridge holds (uses
-- index `claim`). A bridge's online lane claims priority 0 (predict_row), its bulk lane the rest.
-- Within a priority, the earliest virtual time first: accounts take turns (migration 0008).
SELECT id, request_id, seq_from, seq_to, model_name, model_version, attempts, max_attempts
  FROM predict_queue
 WHERE state = 'pending' AND priority BETWEEN %s AND %s AND available_at <= NOW(6)
 ORDER BY priority, vtime, id
 LIMIT %s
   FOR UPDATE SKIP LOCKED;

-- name: claim_update
-- Take the locked chunks: the attempt counts now, so a chunk that crashes its bridge uses it up.
UPDATE predict_queue
   SET state = 'running', attempts = attempts + 1, owner = %s,
       lease_expires_at = NOW(6) + INTERVAL %s SECOND
 WHERE id IN ({ids});

-- name: claim_requests
-- The requests of claimed chunks are running from their first claim on.
UPDATE requests SET status = 'running', started_at = COALESCE(started_at, NOW(6))
 WHERE id IN ({ids}) AND status = 'pending';

-- name: request_spec
-- What the bridge needs to read a request's rows: its kind, the input names in the order its
-- rows carry them, and its typed rows table (NULL for JSON rows in request_rows).
SELECT kind, inputs, rows_table FROM requests WHERE id = %s;

-- name: model_outputs
-- The catalog's score output, outputs and inputs (which may say "missing": true) of a version.
SELECT score_output, outputs, inputs FROM model_versions WHERE name = %s AND version = %s;

-- name: chunk_rows_typed
-- The typed rows of a chunk, read over the binary protocol. {table} is the request's rows table
-- and {columns} its input columns ", i1, i2, ...", both filled in by mlbridge.bridge.source.
SELECT seq{columns} FROM {table} WHERE seq BETWEEN ? AND ? ORDER BY seq;

-- name: rows_column_types
-- The types of a rows table's input columns i1..iN (the bridge reads all-number rows faster).
SELECT DATA_TYPE FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME REGEXP '^i[0-9]+$'
 ORDER BY ORDINAL_POSITION;

-- name: chunk_results
-- The rows of a chunk that have a result already (failed at queue time): the bridge skips them.
-- A range of the primary key, usually empty: cheaper than an anti-join on every row.
SELECT seq FROM results WHERE request_id = %s AND seq BETWEEN %s AND %s;

-- name: online_request
-- A predict_row request and its row in one round trip: the online lane's read.
SELECT q.kind, q.inputs, q.rows_table, o.features
  FROM requests AS q LEFT JOIN online_rows AS o ON o.request_id = q.id
 WHERE q.id = %s;

-- name: online_row
-- The one row of a predict_row request: a JSON object of input name -> value.
SELECT features FROM online_rows WHERE request_id = %s;

-- name: chunk_rows
-- The JSON rows of a chunk queued before typed rows that have no result yet.
SELECT r.seq, r.row_key, r.features
  FROM request_rows AS r
  LEFT JOIN results AS s ON s.request_id = r.request_id AND s.seq = r.seq
 WHERE r.request_id = %s AND r.seq BETWEEN %s AND %s AND s.seq IS NULL
 ORDER BY r.seq;

-- name: close_chunk
-- Close a chunk only while this bridge still holds it; 0 rows means the claim was lost
-- (lease expired and taken over, or the request cancelled): the caller rolls back. The owner
-- stays on the closed chunk: it says which bridge scored it.
UPDATE predict_queue
   SET state = %s, lease_expires_at = NULL, finished_at = NOW(6)
 WHERE id = %s AND state = 'running' AND owner = %s;

-- name: insert_results
-- Results of a chunk in one statement; {values} is filled by mlbridge.bridge.sink with escaped
-- literals. The primary key (request_id, seq) refuses a second result for a row.
INSERT INTO results (request_id, seq, score, output, error) VALUES {values};

-- name: load_results
-- Results of a chunk from the bridge's file (mlbridge.bridge.sink); with LOCAL a duplicate key
-- skips the row with a warning, and the bridge then rolls the chunk back.
LOAD DATA LOCAL INFILE '{file}' INTO TABLE results CHARACTER SET utf8mb4
  FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'
  (seq, score, output, error) SET request_id = {request};

-- name: request_progress
-- Count a chunk's rows into its request, finishing the request with its last rows. `status` and
-- `finished_at` come first so they read the counters before this statement changes them.
UPDATE requests
   SET status = CASE
         WHEN status IN ('cancelled', 'failed', 'done') THEN status
         WHEN rows_done + rows_failed + %(done)s + %(failed)s >= rows_total
           THEN IF(COALESCE(error, %(error)s) IS NULL, 'done', 'failed')
         ELSE 'running' END,
       finished_at = IF(finished_at IS NULL AND rows_done + rows_failed + %(done)s + %(failed)s >= rows_total,
                        NOW(6), finished_at),
       error = COALESCE(error, %(error)s),
       rows_done = rows_done + %(done)s,
       rows_failed = rows_failed + %(failed)s
 WHERE id = %(request)s;

-- name: release_chunk
-- Give a chunk back untouched (the model server was unreachable): the attempt is refunded, so a
-- down server does not use attempts up; it is claimable again after a backoff.
UPDATE predict_queue
   SET state = 'pending', owner = NULL, lease_expires_at = NULL,
       attempts = GREATEST(attempts, 1) - 1,
       available_at = NOW(6) + INTERVAL %s MICROSECOND
 WHERE id = %s AND state = 'running' AND owner = %s;

-- name: retry_chunk
-- A counted attempt failed: keep its error and make the chunk claimable again after a backoff.
UPDATE predict_queue
   SET state = 'pending', owner = NULL, lease_expires_at = NULL,
       errors = JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                  JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s)),
       available_at = NOW(6) + INTERVAL %s MICROSECOND
 WHERE id = %s AND state = 'running' AND owner = %s;

-- name: record_chunk_error
-- Keep the error of a chunk's last attempt as it fails for good.
UPDATE predict_queue
   SET errors = JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                  JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s))
 WHERE id = %s;

-- name: expired_chunks
-- Chunks whose bridge stopped renewing its lease (it died, or lost the database).
SELECT id, request_id, seq_from, seq_to, model_name, model_version, attempts, max_attempts, owner
  FROM predict_queue
 WHERE state = 'running' AND lease_expires_at < NOW(6)
 ORDER BY id
 LIMIT 100
   FOR UPDATE SKIP LOCKED;

-- name: requeue_expired
-- Return an expired chunk to the queue, keeping a note of what happened to its attempt.
UPDATE predict_queue
   SET state = 'pending', owner = NULL, lease_expires_at = NULL, available_at = NOW(6),
       errors = JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                  JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s))
 WHERE id = %s AND state = 'running';

-- name: take_expired
-- Claim an expired chunk whose attempts are used up, to fail its rows.
UPDATE predict_queue SET owner = %s, lease_expires_at = NOW(6) + INTERVAL 60 SECOND
 WHERE id = %s AND state = 'running';

-- name: sync_model_version
-- The bridge records a version the model server reports; fields the trainer wrote are kept, and
-- a retired version stays retired (model_restore brings it back).
INSERT INTO model_versions (name, version, state, inputs, outputs, score_output, source, error)
VALUES (%s, %s, %s, %s, %s, %s, 'server', %s)
ON DUPLICATE KEY UPDATE
  state = IF(state = 'retired', state, VALUES(state)), error = VALUES(error),
  inputs = IF(source = 'server', VALUES(inputs), inputs),
  outputs = IF(source = 'server', VALUES(outputs), outputs),
  score_output = COALESCE(score_output, VALUES(score_output));

-- name: model_label_version
-- The version a label (`name@canary`) points at, for the trainer's evaluate.
SELECT version FROM model_labels WHERE name = %s AND label = %s;

-- name: renew_leases
-- A bridge's heartbeat: extend every claim it holds, so a slow chunk is not taken over.
UPDATE predict_queue SET lease_expires_at = NOW(6) + INTERVAL %s SECOND
 WHERE owner = %s AND state = 'running';

-- name: retire_missing_versions
-- Versions the catalog calls available that the model server no longer has (their folder was
-- removed): unavailable, so predict_scores refuses them at once. {listed} holds the server's
-- (name, version) pairs, on disk whether loaded or not; an empty list (a server still starting)
-- becomes `SELECT NULL, NULL`, which retires nothing. Rows written in the last 10 s are left
-- alone: a version the trainer has just exported may not be in the server's latest scan yet.
UPDATE model_versions
   SET state = 'unavailable', error = 'mlbridge: the model server no longer has this version'
 WHERE state = 'available' AND updated_at < NOW(6) - INTERVAL 10 SECOND
   AND (name, version) NOT IN ({listed});

-- name: park
-- A bridge about to wait for work registers the connection it will sleep on (wakeup.py).
REPLACE INTO bridge_wakeups (connection_id, bridge, woken, parked_at) VALUES (CONNECTION_ID(), %s, FALSE, NOW(6));

-- name: wait_for_work
-- Wait, unless woken since parking, for a user lock that the bridge's other connection holds:
-- _wake_bridges finds this statement by its text and ends it with KILL QUERY. 2: woken before
-- the wait began; NULL (or error 1317): the wait was killed; 0: waited it out; 1: the lock was
-- free (its holder is gone).
SELECT IF(woken, 2, GET_LOCK(%s, %s)) /* mlbridge_wake */ FROM bridge_wakeups WHERE connection_id = CONNECTION_ID();

-- name: unpark
-- A bridge that stops waiting for good.
DELETE FROM bridge_wakeups WHERE connection_id = CONNECTION_ID();

-- name: forget_stale_parkers
-- Rows of bridges that died parked (a live one parks again at least every few seconds).
DELETE FROM bridge_wakeups WHERE parked_at < NOW(6) - INTERVAL 1 MINUTE;

-- ---------------------------------------------------------------------------------------------
-- The trainer worker (`mlbridge trainer`): jobs of train_model, score_model and explain_model.
-- A job is claimed in a short transaction with a lease that the worker's heartbeat renews; the
-- outcome is written only while the claim still holds (a cancelled or taken-over job writes nothing).

-- name: job_claim_select
-- Lock the oldest claimable job, skipping those another worker is claiming (uses index `claim`).
SELECT request_id, kind, label, query, attempts, max_attempts
  FROM jobs
 WHERE state = 'pending' AND available_at <= NOW(6)
 ORDER BY available_at, request_id
 LIMIT 1
   FOR UPDATE SKIP LOCKED;

-- name: job_claim_update
-- Take the locked job: the attempt counts now, so a job that kills its worker uses it up.
UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = %s,
                lease_expires_at = NOW(6) + INTERVAL %s SECOND
 WHERE request_id = %s AND state = 'pending';

-- name: job_request
-- What a worker needs of a job's request.
SELECT owner, model_name, model_version, key_column, options, rows_table, rows_total FROM requests WHERE id = %s;

-- name: job_started
UPDATE requests SET status = 'running', started_at = COALESCE(started_at, NOW(6)), progress = %s
 WHERE id = %s AND status IN ('pending', 'running');

-- name: job_renew
-- A worker's heartbeat for its job; no row changed means the claim is gone (cancelled, or taken
-- over after the lease ran out), and the worker stops.
UPDATE jobs SET lease_expires_at = NOW(6) + INTERVAL %s SECOND
 WHERE request_id = %s AND worker = %s AND state = 'running';

-- name: job_progress
UPDATE requests SET progress = %s WHERE id = %s AND status = 'running';

-- name: job_close
-- Close a job this worker still holds, as done or failed (in the transaction that writes the request).
UPDATE jobs SET state = %s, lease_expires_at = NULL, finished_at = NOW(6),
                errors = IF(%s IS NULL, errors,
                            JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                              JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s)))
 WHERE request_id = %s AND worker = %s AND state = 'running';

-- name: job_done
UPDATE requests SET status = 'done', result = %s, model_version = COALESCE(%s, model_version),
                    rows_done = rows_total, progress = %s, finished_at = NOW(6)
 WHERE id = %s;

-- name: job_failed
UPDATE requests SET status = 'failed', error = %s, progress = %s, finished_at = NOW(6) WHERE id = %s;

-- name: job_retry
-- Give a job back after an error that was not the caller's (a lost database, a crash): claimable
-- again after a backoff, its attempt spent.
UPDATE jobs SET state = 'pending', worker = NULL, lease_expires_at = NULL,
                available_at = NOW(6) + INTERVAL %s SECOND,
                errors = JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                           JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s))
 WHERE request_id = %s AND worker = %s AND state = 'running';

-- name: job_expired
-- Jobs whose worker stopped renewing its lease (it died, or lost the database).
SELECT request_id, attempts, max_attempts, worker
  FROM jobs
 WHERE state = 'running' AND lease_expires_at < NOW(6)
 ORDER BY request_id
 LIMIT 100
   FOR UPDATE SKIP LOCKED;

-- name: job_requeue
UPDATE jobs SET state = 'pending', worker = NULL, lease_expires_at = NULL,
                errors = JSON_ARRAY_APPEND(COALESCE(errors, JSON_ARRAY()), '$',
                                           JSON_OBJECT('at', NOW(6), 'attempt', attempts, 'error', %s))
 WHERE request_id = %s AND state = 'running';

-- name: job_give_up
UPDATE jobs SET state = 'failed', lease_expires_at = NULL, finished_at = NOW(6) WHERE request_id = %s AND state = 'running';

-- name: job_columns
-- The columns of a job's rows table, in the query's order (without the row number).
SELECT COLUMN_NAME FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME <> '_mlbridge_seq'
 ORDER BY ORDINAL_POSITION;

-- ---------------------------------------------------------------------------------------------
-- Trigger streams (migration 0009): the bridges drain mlbridge.inbox.

-- name: inbox_any
SELECT 1 FROM inbox LIMIT 1;

-- name: inbox_take
-- The oldest inbox rows no other bridge is taking, locked until their scores are written.
SELECT id, stream, row_key, features FROM inbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED;

-- name: stream_model
SELECT model FROM streams WHERE name = %s;

-- name: label_version
SELECT version FROM model_labels WHERE name = %s AND label = %s;

-- name: newest_version
SELECT MAX(version) FROM model_versions WHERE name = %s AND state = 'available';

-- name: version_inputs
SELECT JSON_EXTRACT(inputs, '$[*].name'), state FROM model_versions WHERE name = %s AND version = %s;

-- name: stream_score
-- The latest score of a key (VALUES() is the form both MySQL 8 and MariaDB accept).
INSERT INTO stream_scores (stream, row_key, score, output, error, model_version, scored_at)
VALUES (%s, %s, %s, %s, %s, %s, NOW(6))
ON DUPLICATE KEY UPDATE score = VALUES(score), output = VALUES(output), error = VALUES(error),
  model_version = VALUES(model_version), scored_at = VALUES(scored_at);

-- name: inbox_done
DELETE FROM inbox WHERE id IN ({ids});
