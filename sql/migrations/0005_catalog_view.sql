-- mlbridge schema, version 5: the catalog as a view, versions that can be retired, and who
-- trained each one.
--
-- The table of model versions is `model_versions`; `mlbridge.models` is now a view of it
-- (sql/views/models.sql) with each version's labels, readable by mlbridge_user, that leaves out
-- the training query: that is private to the account that trained the version and to admins
-- (routine model_queries). Retired versions stay in the catalog but take no new requests.
RENAME TABLE models TO model_versions;

ALTER TABLE model_versions
  MODIFY state ENUM('available', 'unavailable', 'failed', 'retired') NOT NULL DEFAULT 'available',
  ADD COLUMN trained_by VARCHAR(400) NULL COMMENT 'the account that trained it (user@host); NULL when the server found it' AFTER trained_on,
  ADD COLUMN retired_at DATETIME(6) NULL COMMENT 'when model_retire retired it' AFTER error;
