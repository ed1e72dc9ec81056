-- Accounts and roles, applied by `mlbridge db install` after the migrations (idempotent).
-- {{schema}} and {{scratch}} are the installer's names for the mlbridge schema and its scratch
-- schema (`mlbridge` and `mlbridge_scratch` unless the DSN names another schema).
--
-- The routines are defined by a locked account that nobody logs in as, holding only what the
-- routines need; callers hold EXECUTE on the schema, SELECT on the catalog, and may create
-- temporary tables in the scratch schema only (where an INVOKER routine stages the caller's
-- query with the caller's own privileges), so no caller can shadow a real mlbridge table.
-- MySQL roles are 'name'@'%' and MariaDB roles are bare names: both accept the bare form below.

CREATE USER IF NOT EXISTS 'mlbridge_definer'@'localhost' ACCOUNT LOCK;
GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{{schema}}`.* TO 'mlbridge_definer'@'localhost';
GRANT CREATE TEMPORARY TABLES ON `{{scratch}}`.* TO 'mlbridge_definer'@'localhost';

CREATE ROLE IF NOT EXISTS mlbridge_user;
GRANT EXECUTE ON `{{schema}}`.* TO mlbridge_user;
GRANT SELECT ON `{{schema}}`.`models` TO mlbridge_user;
GRANT CREATE TEMPORARY TABLES ON `{{scratch}}`.* TO mlbridge_user;

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
