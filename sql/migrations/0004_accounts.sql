-- mlbridge schema, version 4: a request belongs to the authenticated account that queued it.
--
-- Until now the owner was the user name of USER(), the name the client typed: an anonymous
-- account ''@localhost holding mlbridge_user could log in as "c" and read c's requests. Now the
-- owner is the account as CURRENT_USER() names it in the caller's session (user@host). A DEFINER
-- routine sees only its definer there, so the public routines are INVOKER and attest the caller
-- first (routines/_attest.sql): each account registered by `mlbridge db grant` has a routine of
-- its own, `_as_<hash>`, that only it may EXECUTE, and that records (CONNECTION_ID(), account)
-- in `attestations`; the DEFINER routine that the public one hands off to takes that row (and
-- deletes it) before anything else, and trusts none of its arguments for who the caller is.

ALTER TABLE requests
  MODIFY owner VARCHAR(400) NOT NULL COMMENT 'the authenticated account (user@host, as CURRENT_USER() gives it) that queued it';

-- The requests of the first releases, owned by bare user names, go to an account of that name
-- (mysql.user is a view on MariaDB 10.4+ and a table on MySQL; both have User and Host; roles
-- have an empty host). Where a name has accounts on several hosts, all of which shared those
-- requests until now, they go to the one on '%', else 'localhost', else the first host; an admin
-- can give them to another with UPDATE mlbridge.requests SET owner = 'user@host'.
UPDATE requests AS r
   SET r.owner = CONCAT(r.owner, '@', (SELECT u.Host FROM mysql.user AS u WHERE u.User = r.owner AND u.Host <> ''
                                        ORDER BY u.Host = '%' DESC, u.Host = 'localhost' DESC, u.Host LIMIT 1))
 WHERE LOCATE('@', r.owner) = 0
   AND EXISTS (SELECT 1 FROM mysql.user AS u WHERE u.User = r.owner AND u.Host <> '');

-- The accounts registered by `mlbridge db grant`, with their attestation routine.
CREATE TABLE IF NOT EXISTS accounts (
  account     VARCHAR(400) NOT NULL COMMENT 'user@host, as CURRENT_USER() gives it',
  routine     VARCHAR(64)  NOT NULL COMMENT 'its attestation routine, which only it may EXECUTE',
  role        VARCHAR(32)  NOT NULL COMMENT 'mlbridge_user | mlbridge_admin | mlbridge_worker',
  created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (account)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Who the session on a connection is, recorded by its account's attestation routine and taken by
-- the next DEFINER routine it calls. MEMORY: no transaction, so a caller's open transaction
-- holds no lock here, and no log write per call; it empties on restart, as connections do.
CREATE TABLE IF NOT EXISTS attestations (
  connection_id  BIGINT UNSIGNED NOT NULL,
  account        VARCHAR(400)    NOT NULL,
  login          VARCHAR(400)    NOT NULL COMMENT 'USER() of the session that attested',
  attested_at    DATETIME(6)     NOT NULL,
  PRIMARY KEY (connection_id)
) ENGINE=MEMORY DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
