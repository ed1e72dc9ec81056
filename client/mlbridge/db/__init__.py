"""Connections to MySQL / MariaDB, the named queries of sql/queries.sql, and transaction retry."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import mysql.connector
from mysql.connector import errorcode

from ..config import Dsn
from ..errors import MlbridgeError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Errors after which the whole transaction is retried.
RETRYABLE = {errorcode.ER_LOCK_DEADLOCK, errorcode.ER_LOCK_WAIT_TIMEOUT}
# Errors that mean the connection is gone: reconnect and retry.
CONNECTION_LOST = {2006, 2013, 2055, 4031}

T = TypeVar("T")


def connect(dsn: Dsn, *, database: bool = True, autocommit: bool = True, **extra):
    """A connection with autocommit on (mysql-connector's default is off, which would hide
    queued rows from the bridge), UTF-8, and the C extension where it loads."""
    args = dsn.connect_args(database=database)
    args.update(autocommit=autocommit, charset="utf8mb4", collation="utf8mb4_general_ci")
    args.update(extra)
    try:
        return mysql.connector.connect(**args)
    except mysql.connector.Error as exc:
        raise MlbridgeError(f"mlbridge: cannot connect to {dsn.redacted()}: {exc.msg}{_tls_hint(exc, args)}") from exc


CR_SSL_CONNECTION_ERROR = 2026


def _tls_hint(exc, args: dict) -> str:
    """What to fix when the TLS handshake failed: OpenSSL's words alone do not say."""
    if exc.errno != CR_SSL_CONNECTION_ERROR and "CERTIFICATE_VERIFY_FAILED" not in str(exc.msg):
        return ""
    if "verify" in str(exc.msg).lower() and args.get("ssl_ca"):
        return (f"; the server's certificate does not check out against ssl_ca={args['ssl_ca']}: give the CA that "
                "signed it" + (", and a host the certificate names" if args.get("ssl_verify_identity") else "")
                + " (or ssl_verify_cert=false to skip the check)")
    return "; check the DSN's ssl_* options (README: TLS and credentials), or ssl_disabled=true for a server without TLS"


def have_cext() -> bool:
    return bool(mysql.connector.HAVE_CEXT)


_QUERY_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.M)


@cache
def queries() -> dict[str, str]:
    """The named queries of sql/queries.sql, each under a `-- name: NAME` header."""
    text = (SQL_DIR / "queries.sql").read_text()
    parts = _QUERY_HEADER.split(text)
    found = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


def query(name: str) -> str:
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries.sql") from None


def fetch_all(conn, name: str, params: tuple = ()) -> list[tuple]:
    """The rows of named query `name` (sql/queries.sql), on a cursor of its own."""
    cur = conn.cursor()
    try:
        cur.execute(query(name), params)
        return cur.fetchall()
    finally:
        cur.close()


def fetch_one(conn, name: str, params: tuple = ()) -> tuple | None:
    """The first row of named query `name`, or None."""
    found = fetch_all(conn, name, params)
    return found[0] if found else None


def retry_transaction(conn, work: Callable[[object], T], *, attempts: int = 8) -> T:
    """Run work(cursor) in one transaction; retry the whole of it on deadlock or lock wait timeout."""
    for attempt in range(1, attempts + 1):
        try:
            conn.start_transaction()
            cur = conn.cursor()
            try:
                result = work(cur)
            finally:
                cur.close()
            conn.commit()
            return result
        except mysql.connector.Error as exc:
            _rollback_quietly(conn)
            if exc.errno in RETRYABLE and attempt < attempts:
                time.sleep(min(0.5, 0.01 * 2**attempt) * random.uniform(0.5, 1.5))
                continue
            raise
        except BaseException:
            _rollback_quietly(conn)
            raise
    raise AssertionError("unreachable")


def close_quietly(conn) -> None:
    """Close a connection that may be broken already (closing one can fail too); None is fine."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - nothing to do about a connection that is gone
            pass


def _rollback_quietly(conn) -> None:
    """Roll back what can be; on a lost connection the server has rolled back already, and the
    C extension then raises its own MySQLInterfaceError, which is no mysql.connector.Error."""
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the original error is the one that matters
        pass


def quote_ident(name: str) -> str:
    """Quote an identifier for MySQL: backticks, with backticks inside doubled."""
    if not name or "\x00" in name or len(name) > 64:
        raise MlbridgeError(f"mlbridge: {name!r} is not a valid column or table name")
    return "`" + name.replace("`", "``") + "`"
