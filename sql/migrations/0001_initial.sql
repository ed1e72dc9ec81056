-- mlbridge schema, version 1: the model catalog, requests, their rows, the queue and results.
-- Applied once by `mlbridge db install` (recorded in schema_migrations); later changes are new
-- numbered files, never edits of this one. Statements are separated by `;` at line ends.
-- JSON columns are LONGTEXT with a JSON_VALID check on MariaDB and native JSON on MySQL 8;
-- both accept the same statements.

-- The model catalog: one row per model version, written by the trainer when it exports a version
-- and by the bridge from the model server's metadata (a SavedModel copied in by hand appears too).
CREATE TABLE IF NOT EXISTS models (
  name          VARCHAR(64)  NOT NULL,
  version       INT UNSIGNED NOT NULL,
  state         ENUM('available', 'unavailable', 'failed') NOT NULL DEFAULT 'available',
  task          VARCHAR(32)  NULL COMMENT 'regression | binary; NULL when the server found it',
  inputs        JSON         NOT NULL COMMENT '[{"name", "dtype", "shape"}] in signature order',
  outputs       JSON         NOT NULL COMMENT '[{"name", "dtype", "shape"}]',
  score_output  VARCHAR(64)  NULL COMMENT 'the output that is the score',
  label         VARCHAR(64)  NULL COMMENT 'the label column it was trained on',
  metrics       JSON         NULL COMMENT 'hold-out metrics from training',
  trained_on    TEXT         NULL COMMENT 'the training query',
  source        ENUM('trainer', 'server') NOT NULL,
  error         TEXT         NULL,
  created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (name, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Version labels (`name@canary`), resolved to a version when a request is queued.
CREATE TABLE IF NOT EXISTS model_labels (
  name        VARCHAR(64)  NOT NULL,
  label       VARCHAR(64)  NOT NULL,
  version     INT UNSIGNED NOT NULL,
  updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (name, label)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per request: what was asked, by whom, pinned to which model version, and its progress.
CREATE TABLE IF NOT EXISTS requests (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  kind           ENUM('predict', 'predict_table', 'train', 'score', 'explain') NOT NULL,
  owner          VARCHAR(128) NOT NULL COMMENT 'user name of the session that queued it',
  model_name     VARCHAR(64)  NOT NULL,
  model_version  INT UNSIGNED NULL,
  inputs         JSON         NULL COMMENT 'input names in the order request_rows.features carries them',
  key_column     VARCHAR(64)  NULL,
  options        JSON         NULL,
  status         ENUM('pending', 'running', 'done', 'failed', 'cancelled') NOT NULL DEFAULT 'pending',
  rows_total     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_done      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_failed    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  error          TEXT         NULL,
  created_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  started_at     DATETIME(6)  NULL,
  finished_at    DATETIME(6)  NULL,
  PRIMARY KEY (id),
  KEY owner_id (owner, id),
  KEY status_id (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The input rows of a request, numbered 1..rows_total. `features` is a JSON array in the order of
-- requests.inputs, so any model's features travel without per-model DDL. `row_key` is the key's
-- text; NULL when the key was NULL (that row fails).
CREATE TABLE IF NOT EXISTS request_rows (
  request_id  BIGINT UNSIGNED NOT NULL,
  seq         INT UNSIGNED    NOT NULL,
  row_key     VARCHAR(255)    NULL,
  features    MEDIUMTEXT      NOT NULL COMMENT 'JSON array; not a JSON column, to spare a validation per row',
  PRIMARY KEY (request_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The queue the bridge drains. The unit of work is a chunk: rows seq_from..seq_to of one request,
-- so a million-row request is a thousand claims, not a million. A chunk is claimed in a short
-- transaction (state 'running', attempts + 1, owner, lease), scored with no lock held, and closed
-- in the transaction that writes its results, only while the claim still holds.
CREATE TABLE IF NOT EXISTS predict_queue (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  request_id        BIGINT UNSIGNED NOT NULL,
  seq_from          INT UNSIGNED    NOT NULL,
  seq_to            INT UNSIGNED    NOT NULL,
  model_name        VARCHAR(64)     NOT NULL,
  model_version     INT UNSIGNED    NOT NULL,
  state             ENUM('pending', 'running', 'done', 'failed', 'cancelled') NOT NULL DEFAULT 'pending',
  priority          SMALLINT        NOT NULL DEFAULT 1 COMMENT 'lower is claimed first: 0 online rows, 1 predict_scores, 2 bulk tables',
  attempts          SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  max_attempts      SMALLINT UNSIGNED NOT NULL DEFAULT 5,
  owner             VARCHAR(128)    NULL COMMENT 'the bridge holding the claim',
  lease_expires_at  DATETIME(6)     NULL,
  available_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  errors            JSON            NULL COMMENT '[{"at", "attempt", "error"}], one per failed attempt',
  created_at        DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at        DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  finished_at       DATETIME(6)     NULL,
  PRIMARY KEY (id),
  -- Matches the claim's WHERE and ORDER BY, so its locking read touches only the rows it takes.
  KEY claim (state, priority, available_at, id),
  KEY lease (state, lease_expires_at),
  KEY request (request_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per scored or failed input row; the primary key makes a second write of a row fail,
-- so nothing is scored twice into the results.
CREATE TABLE IF NOT EXISTS results (
  request_id  BIGINT UNSIGNED NOT NULL,
  seq         INT UNSIGNED    NOT NULL,
  row_key     VARCHAR(255)    NULL,
  score       DOUBLE          NULL,
  output      JSON            NULL,
  error       TEXT            NULL,
  created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (request_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
