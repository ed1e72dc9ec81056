-- mlbridge schema, version 9: scoring from triggers.
--
-- An application's AFTER INSERT trigger cannot run dynamic SQL or CALL a routine that returns a
-- result set, so it queues its new row by a static INSERT into `inbox` (under a CONTINUE handler,
-- so that the application's INSERT never fails because of it). Each stream, created by an admin
-- (stream_create), names the model its rows are scored with; the bridges drain the inbox, score
-- each stream's rows with the version the model resolves to at that moment (a label is followed
-- when a batch is taken), and keep the latest score of each key in `stream_scores`, which the
-- application reads through a DEFINER view of its stream (docs/sql.md, "Scoring from triggers").
-- The inbox is exempt from the per-account limits: a trigger must never be refused.
CREATE TABLE IF NOT EXISTS streams (
  name        VARCHAR(64)  NOT NULL,
  model       VARCHAR(255) NOT NULL COMMENT '''name'', ''name:3'' or ''name@label'', resolved as each batch is scored',
  created_by  VARCHAR(400) NULL,
  created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS inbox (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stream      VARCHAR(64)     NOT NULL,
  row_key     VARCHAR(255)    NOT NULL COMMENT 'the application row''s key, as text',
  features    TEXT            NOT NULL COMMENT 'JSON object: input name -> value (JSON_OBJECT in the trigger)',
  created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stream_scores (
  stream         VARCHAR(64)   NOT NULL,
  row_key        VARCHAR(255)  NOT NULL,
  score          DOUBLE        NULL,
  output         JSON          NULL,
  error          TEXT          NULL,
  model_version  INT UNSIGNED  NULL,
  scored_at      DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (stream, row_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
