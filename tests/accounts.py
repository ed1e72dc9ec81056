"""Real accounts for tests: created, given an mlbridge role with `mlbridge db grant`'s code, and
dropped with their attestation routine."""

from __future__ import annotations

from mlbridge.config import Dsn
from mlbridge.db import connect, quote_ident
from mlbridge.db.accounts import Account, grant, routine_name
from mlbridge.db.install import DEFINER


def create_account(dsn: Dsn, user: str, *, password: str = "pw", host: str = "%", role: str | None = "mlbridge_user",
                   grants: tuple[str, ...] = ()) -> Account:
    """CREATE USER user@host, grant `role` (as `mlbridge db grant` does) and each of `grants`
    (e.g. "SELECT ON db.t")."""
    account = Account(user, host)
    conn = connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE USER IF NOT EXISTS {account.sql} IDENTIFIED BY %s", (password,))
        for privilege in grants:
            cur.execute(f"GRANT {privilege} TO {account.sql}")
        cur.close()
        if role:
            grant(conn, dsn.database, account, role, DEFINER)
    finally:
        conn.close()
    return account


def drop_account(dsn: Dsn, account: Account) -> None:
    conn = connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"DROP USER IF EXISTS {account.sql}")
        cur.execute(f"DROP PROCEDURE IF EXISTS {quote_ident(dsn.database)}.{quote_ident(routine_name(account.name))}")
        cur.execute("DELETE FROM accounts WHERE account = %s", (account.name,))
    finally:
        conn.close()
