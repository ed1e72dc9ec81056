-- Accounts and roles, applied by `mlbridge db install` after the migrations (idempotent).
-- {{schema}} and {{scratch}} are the installer's names for the mlbridge schema and its scratch
-- schema (`mlbridge` and `mlbridge_scratch` unless the DSN names another schema).
--
-- The routines are defined by a locked account that nobody logs in as, holding only what the
-- routines need. Callers hold EXECUTE on the routines whose file says `-- execute: mlbridge_user`
-- (granted per routine by the installer after it creates them, so inner routines stay out of
-- reach), SELECT on the catalog view, and may create temporary tables in the scratch schema only
-- (where an INVOKER routine stages the caller's query with the caller's own privileges), so no
-- caller can shadow a real mlbridge table. Each account that uses mlbridge is registered with
-- `mlbridge db grant`, which also creates its attestation routine (see routines/_attest.sql).
-- MySQL roles are 'name'@'%' and MariaDB roles are bare names: both accept the bare form below.

CREATE USER IF NOT EXISTS 'mlbridge_definer'@'localhost' ACCOUNT LOCK;
GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{{schema}}`.* TO 'mlbridge_definer'@'localhost';
GRANT CREATE TEMPORARY TABLES ON `{{scratch}}`.* TO 'mlbridge_definer'@'localhost';

CREATE ROLE IF NOT EXISTS mlbridge_user;
GRANT CREATE TEMPORARY TABLES ON `{{scratch}}`.* TO mlbridge_user;
-- The install settings (limits, retention, chunk sizes) are no secret: callers read their limits.
GRANT SELECT ON `{{schema}}`.`settings` TO mlbridge_user;

CREATE ROLE IF NOT EXISTS mlbridge_admin;
GRANT mlbridge_user TO mlbridge_admin;
GRANT SELECT ON `{{schema}}`.* TO mlbridge_admin;

-- What the bridge and trainer processes need; give it to the account in their DSN.
CREATE ROLE IF NOT EXISTS mlbridge_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON `{{schema}}`.* TO mlbridge_worker;

-- The typed rows of requests: one table per request in {{data}}, created by the definer as a
-- request is queued, read by the bridge, dropped when the request is purged.
GRANT SELECT, INSERT, CREATE, DROP ON `{{data}}`.* TO 'mlbridge_definer'@'localhost';
GRANT SELECT, DROP ON `{{data}}`.* TO mlbridge_worker;
GRANT SELECT ON `{{data}}`.* TO mlbridge_admin;
