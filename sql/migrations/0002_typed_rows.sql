-- mlbridge schema, version 2: the data path of predict_table and predict_row.
--
-- Rows travel typed: a request's rows are copied from the caller's SELECT into a table of their
-- own, {{data}}.rows_<request id> (seq, k, repeated, i1..iN), with the column types the SELECT
-- gave, so the bridge reads native values over the binary protocol and converts each one itself
-- (a bad value fails its own row, never the whole copy). Requests queued before this migration
-- keep their JSON rows in request_rows (rows_table NULL) and are scored as before.

ALTER TABLE requests
  MODIFY kind ENUM('predict', 'predict_table', 'predict_row', 'train', 'score', 'explain') NOT NULL,
  ADD COLUMN rows_table VARCHAR(64) NULL COMMENT 'the typed rows: table rows_<id> of the data schema; NULL when they are JSON in request_rows' AFTER options,
  ADD COLUMN output_table VARCHAR(200) NULL COMMENT 'predict_table: the output, as `db`.`table`' AFTER rows_table,
  ADD COLUMN output_written_at DATETIME(6) NULL COMMENT 'when the owner''s session wrote the output table' AFTER output_table;

-- predict_row: the one row of an online request, as the caller's JSON object.
CREATE TABLE IF NOT EXISTS online_rows (
  request_id  BIGINT UNSIGNED NOT NULL,
  features    TEXT            NOT NULL COMMENT 'JSON object: input name -> value',
  PRIMARY KEY (request_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Bridges waiting for work: each parks one connection in a SLEEP that queueing routines end with
-- KILL QUERY (see routines/_wake_bridges.sql). `woken` closes the race between a bridge's last
-- look at the queue and the start of its sleep.
CREATE TABLE IF NOT EXISTS bridge_wakeups (
  connection_id  BIGINT UNSIGNED NOT NULL,
  bridge         VARCHAR(128)    NOT NULL,
  woken          BOOLEAN         NOT NULL DEFAULT FALSE,
  parked_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (connection_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Install settings, read by the routines and the bridge. Change them with UPDATE (admins).
CREATE TABLE IF NOT EXISTS settings (
  name         VARCHAR(64)   NOT NULL,
  value        VARCHAR(255)  NOT NULL,
  description  VARCHAR(255)  NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO settings (name, value, description) VALUES
  ('chunk_rows', '8192', 'rows per chunk of a bulk request (fewer when its rows are large)'),
  ('max_row_bytes', '1048576', 'a row whose text and binary values add up to more fails with an error'),
  ('max_chunk_bytes', '33554432', 'chunks are sized so that their rows stay under this');

INSERT IGNORE INTO settings (name, value, description) VALUES
  ('predict_row_timeout', '10', 'seconds predict_row waits for its score before it reports the row still queued');
