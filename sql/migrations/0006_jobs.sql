-- mlbridge schema, version 6: training, scoring and explaining from SQL, run by trainer workers.
--
-- train_model, score_model and explain_model copy the rows of the caller's SELECT (read with the
-- caller's privileges) into a table of their own, {{data}}.rows_<request id>, with the caller's
-- column names and types plus `_mlbridge_seq`, and queue a job. A trainer worker (`mlbridge
-- trainer`) claims it in a short transaction with a lease that its heartbeat renews, as a bridge
-- claims chunks: a worker that dies leaves a lease that runs out, and the job is taken again
-- (attempts + 1) or, with its attempts used up, failed. The worker reports progress into
-- requests.progress, watches for a cancel, and writes the outcome into requests.result.

ALTER TABLE requests
  ADD COLUMN progress JSON NULL COMMENT 'jobs: {"phase", "epoch", "epochs", "loss", "val_loss", ...} as the worker reports it' AFTER rows_failed,
  ADD COLUMN result JSON NULL COMMENT 'jobs: train {"model", "version", "metrics"}; score {metric: value}; explain {column: importance}' AFTER progress;

CREATE TABLE IF NOT EXISTS jobs (
  request_id        BIGINT UNSIGNED NOT NULL,
  kind              ENUM('train', 'score', 'explain') NOT NULL,
  label             VARCHAR(64)     NOT NULL COMMENT 'the label column',
  query             MEDIUMTEXT      NOT NULL COMMENT 'the caller''s query as given (a trained version''s trained_on)',
  state             ENUM('pending', 'running', 'done', 'failed', 'cancelled') NOT NULL DEFAULT 'pending',
  attempts          SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  max_attempts      SMALLINT UNSIGNED NOT NULL DEFAULT 3,
  worker            VARCHAR(128)    NULL COMMENT 'the trainer worker holding the claim',
  lease_expires_at  DATETIME(6)     NULL,
  available_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  errors            JSON            NULL COMMENT '[{"at", "attempt", "error"}], one per failed attempt',
  created_at        DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at        DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  finished_at       DATETIME(6)     NULL,
  PRIMARY KEY (request_id),
  KEY claim (state, available_at, request_id),
  KEY lease (state, lease_expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
