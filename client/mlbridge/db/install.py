"""`mlbridge db install`: create or upgrade schema `mlbridge` from the files under sql/.

- sql/migrations/NNNN_*.sql: tables, applied once each in order and recorded in schema_migrations.
- sql/grants.sql: the locked definer account and the roles (idempotent statements).
- sql/routines/*.sql: one routine per file (so no DELIMITER games), created with the definer
  account; a routine whose text has not changed since the last install is left alone, so running
  the installer twice changes nothing. A line `-- execute: ROLE[, ROLE]` in a routine's file says
  who may EXECUTE it (granted per routine); a routine without one is inner, for other routines only.
- sql/views/*.sql: one view per file, created (or replaced) with the definer account.
- the installing account and every account holding mlbridge_user or mlbridge_admin are
  registered (their attestation routines: see mlbridge.db.accounts).

Files may use {{schema}}, {{scratch}}, {{data}}, {{in_transaction}}, {{message_max}} and
{{staging_engine}}, which the installer fills in for the server at hand (MariaDB or MySQL).

Three schemas: `mlbridge` (tables and routines), `mlbridge_scratch` (where callers' sessions stage
their rows in temporary tables) and `mlbridge_data` (one table of typed rows per request, created
and dropped by the routines' definer; callers have no privilege there).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import mysql.connector

from ..config import Dsn
from ..errors import MlbridgeError
from . import SQL_DIR, connect, quote_ident
from .accounts import flavor_of, register, register_role_holders

DEFINER = "'mlbridge_definer'@'localhost'"
# The longest SIGNAL message text: MySQL holds MESSAGE_TEXT to 128 characters and, in strict mode,
# fails the SIGNAL itself with "Data too long for condition item" when a message is longer;
# MariaDB allows 512 bytes (MDEV-15241). Routines cut their messages with LEFT(..., {{message_max}}).
MESSAGE_MAX = {"mariadb": 500, "mysql": 128}
# The engine of the temporary table a caller's rows are staged in: MariaDB's Aria takes the bulk
# insert in about a third less time than InnoDB (1M rows x 9 columns: 1.5 s against 2.1 s here);
# MySQL has no Aria, and its default for temporary tables is InnoDB.
STAGING_ENGINE = {"mariadb": "ENGINE=Aria", "mysql": ""}
# The sql_mode routines are created under (a routine keeps the mode it was created with).
SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


@dataclass
class InstallReport:
    schema: str
    flavor: str
    migrations_applied: list[str] = field(default_factory=list)
    routines_created: list[str] = field(default_factory=list)
    routines_unchanged: int = 0
    accounts_registered: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.migrations_applied or self.routines_created)


def split_statements(text: str) -> list[str]:
    """Split a file of plain statements on `;` at the end of a line; drop `--` comment lines."""
    statements, current = [], []
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip().rstrip(";").strip()
            if stmt:
                statements.append(stmt)
            current = []
    tail = "\n".join(current).strip()
    if tail and not all(ln.lstrip().startswith("--") for ln in tail.splitlines()):
        statements.append(tail)
    return statements


def render(text: str, *, schema: str, flavor: str) -> str:
    return (
        text.replace("{{schema}}", schema.replace("`", "``"))
        .replace("{{scratch}}", scratch_schema(schema).replace("`", "``"))
        .replace("{{data}}", data_schema(schema).replace("`", "``"))
        .replace("{{in_transaction}}", "@@in_transaction" if flavor == "mariadb" else "FALSE")
        .replace("{{message_max}}", str(MESSAGE_MAX[flavor]))
        .replace("{{staging_engine}}", STAGING_ENGINE[flavor])
    )


def scratch_schema(schema: str) -> str:
    return f"{schema}_scratch"


def data_schema(schema: str) -> str:
    return f"{schema}_data"


def routine_files() -> list[Path]:
    return sorted((SQL_DIR / "routines").glob("*.sql"))


def migration_files() -> list[Path]:
    return sorted((SQL_DIR / "migrations").glob("[0-9]*.sql"))


_ROUTINE_HEAD = re.compile(r"^\s*CREATE\s+(PROCEDURE|FUNCTION)\s+`?(\w+)`?", re.I | re.M)


def install(dsn: Dsn, *, upto: str | None = None) -> InstallReport:
    """Install or upgrade. `upto` (a migration's name, as in 0001_initial) stops after that
    migration and creates no routines: an older release's tables, for upgrade tests."""
    schema = dsn.database
    conn = connect(dsn, database=False)
    try:
        cur = conn.cursor()
        report = InstallReport(schema=schema, flavor=flavor_of(cur))
        cur.execute(f"SET SESSION sql_mode = '{SQL_MODE}'")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)} CHARACTER SET utf8mb4")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(scratch_schema(schema))} CHARACTER SET utf8mb4")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(data_schema(schema))} CHARACTER SET utf8mb4")
        cur.execute(f"USE {quote_ident(schema)}")
        _migrate(cur, report, upto)
        definer = _grants(cur, report)
        if upto is None:
            _views(cur, report, definer)
            _routines(cur, report, definer)
            _routine_grants(cur, report)
            _register(cur, report, definer)
        return report
    except mysql.connector.Error as exc:
        raise MlbridgeError(f"mlbridge: installing schema {schema} failed: {exc.msg}") from exc
    finally:
        conn.close()


def _migrate(cur, report: InstallReport, upto: str | None = None) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR(128) NOT NULL PRIMARY KEY,"
        " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
    )
    cur.execute("SELECT version FROM schema_migrations")
    applied = {row[0] for row in cur.fetchall()}
    for path in migration_files():
        if upto is not None and path.stem > upto:
            break
        if path.stem in applied:
            continue
        for stmt in split_statements(render(path.read_text(), schema=report.schema, flavor=report.flavor)):
            cur.execute(stmt)
        cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
        report.migrations_applied.append(path.stem)


def _grants(cur, report: InstallReport) -> str | None:
    """Create the definer account and roles; return the definer to create routines with, or None
    (the installing account) where this account may not create users or set another definer."""
    text = render((SQL_DIR / "grants.sql").read_text(), schema=report.schema, flavor=report.flavor)
    try:
        for stmt in split_statements(text):
            cur.execute(stmt)
    except mysql.connector.Error as exc:
        report.warnings.append(
            f"accounts and roles were not set up ({exc.msg}); routines are defined by the installing account"
        )
        return None
    # Waking parked bridges (routines/_wake_bridges.sql) ends their SLEEP with KILL QUERY, which
    # needs these two global privileges for the definer: PROCESS to see the bridges' connections,
    # and the right to kill another account's query. Without them bridges fall back to polling.
    kill_right = "CONNECTION ADMIN" if report.flavor == "mariadb" else "CONNECTION_ADMIN"
    try:
        cur.execute(f"GRANT PROCESS, {kill_right} ON *.* TO {DEFINER}")
    except mysql.connector.Error as exc:
        report.warnings.append(f"bridges cannot be woken by a push ({exc.msg}); they poll the queue instead")
    return DEFINER


def _routines(cur, report: InstallReport, definer: str | None) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_routines ("
        " name VARCHAR(64) NOT NULL PRIMARY KEY, sha256 CHAR(64) NOT NULL,"
        " installed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
    )
    cur.execute("SELECT name, sha256 FROM schema_routines")
    installed = dict(cur.fetchall())
    cur.execute(
        "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", (report.schema,)
    )
    present = {row[0] for row in cur.fetchall()}
    for path in routine_files():
        text = render(path.read_text(), schema=report.schema, flavor=report.flavor)
        head = _ROUTINE_HEAD.search(text)
        if not head or head.group(2) != path.stem:
            raise MlbridgeError(f"mlbridge: {path.name} must hold one CREATE PROCEDURE/FUNCTION named {path.stem}")
        kind, name = head.group(1).upper(), head.group(2)
        digest = hashlib.sha256(f"{definer}\n{text}".encode()).hexdigest()
        if installed.get(name) == digest and name in present:
            report.routines_unchanged += 1
            continue
        body = text[head.start():]
        if definer:
            body = re.sub(r"^\s*CREATE\s+", f"CREATE DEFINER={definer} ", body, count=1, flags=re.I)
        cur.execute(f"DROP {kind} IF EXISTS {quote_ident(name)}")
        cur.execute(body)
        cur.execute(
            "INSERT INTO schema_routines (name, sha256) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE sha256 = VALUES(sha256), installed_at = CURRENT_TIMESTAMP(6)",
            (name, digest),
        )
        report.routines_created.append(name)


_SELECT = re.compile(r"^--\s*select:\s*(.+?)\s*$", re.M)
_EXECUTE = re.compile(r"^--\s*execute:\s*(.+?)\s*$", re.M)


def routine_roles(text: str) -> list[str]:
    """The roles a routine file grants EXECUTE to (its `-- execute:` line)."""
    found = _EXECUTE.search(text)
    return [r.strip() for r in found.group(1).split(",")] if found else []


def _routine_grants(cur, report: InstallReport) -> None:
    """EXECUTE per routine, as each file says; nothing schema-wide, so callers cannot reach the
    inner routines. Granted on every install: dropping a changed routine drops its grants. The
    schema-wide EXECUTE that earlier releases gave mlbridge_user is taken back."""
    schema = quote_ident(report.schema)
    try:
        cur.execute(f"REVOKE EXECUTE ON {schema}.* FROM mlbridge_user")
    except mysql.connector.Error:
        pass  # not granted (a fresh install) or no roles here
    for path in routine_files():
        for role in routine_roles(path.read_text()):
            try:
                cur.execute(f"GRANT EXECUTE ON PROCEDURE {schema}.{quote_ident(path.stem)} TO {role}")
            except mysql.connector.Error as exc:
                report.warnings.append(f"EXECUTE on {path.stem} was not granted to {role} ({exc.msg})")


def _register(cur, report: InstallReport, definer: str | None) -> None:
    """Register the installing account (so it can call the routines it installed) and every
    account that holds a caller role."""
    cur.execute("SELECT CURRENT_USER()")
    me = cur.fetchone()[0]
    if me and not me.startswith("@"):
        register(cur, report.schema, me, "installer", definer)
    try:
        report.accounts_registered = register_role_holders(cur, report.schema, report.flavor, definer)
    except mysql.connector.Error as exc:
        report.warnings.append(f"accounts holding mlbridge roles were not registered ({exc.msg}); "
                               "register each with `mlbridge db grant ACCOUNT`")


def view_files() -> list[Path]:
    return sorted((SQL_DIR / "views").glob("*.sql"))


def _views(cur, report: InstallReport, definer: str | None) -> None:
    """Create or replace each view of sql/views/ (cheap, so always), defined by the definer."""
    for path in view_files():
        body = render(path.read_text(), schema=report.schema, flavor=report.flavor)
        body = "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("--")).strip().rstrip(";")
        if definer:
            body = re.sub(r"^\s*CREATE\s+OR\s+REPLACE\s+", f"CREATE OR REPLACE DEFINER={definer} ", body,
                          count=1, flags=re.I)
        cur.execute(body)
        for role in _SELECT.findall(path.read_text()):
            for name in role.split(","):
                cur.execute(f"GRANT SELECT ON {quote_ident(report.schema)}.{quote_ident(path.stem)} TO {name.strip()}")
