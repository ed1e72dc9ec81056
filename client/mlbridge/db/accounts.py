"""`mlbridge db grant`: give an account one of mlbridge's roles, and register it.

A request belongs to the authenticated account (user@host, as CURRENT_USER() names it in the
caller's session). A DEFINER routine cannot see that account (CURRENT_USER() is its definer
there), so each registered account gets an attestation routine of its own, `_as_<hash>`, that
only it may EXECUTE: the public routines (INVOKER) call it through routines/_attest.sql, and the
DEFINER routines they hand off to take its record (routines/_caller.sql). Registering is what
this module does besides the GRANT.

MariaDB allows one default role per account (`SET DEFAULT ROLE a, b` is a syntax error), so where
the account has a default role already, mlbridge's role is granted to that role instead, and the
account gets it at its next login either way. MySQL 8 keeps a list of default roles, and the role
is added to it. (Only MariaDB servers install on the machines this is tested on.)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import mysql.connector

from ..errors import MlbridgeError

ROLES = {"user": "mlbridge_user", "admin": "mlbridge_admin", "worker": "mlbridge_worker"}
# The roles whose holders call the routines, and so need an attestation routine.
CALLER_ROLES = ("mlbridge_user", "mlbridge_admin")


@dataclass(frozen=True)
class Account:
    user: str
    host: str = "%"

    _FORMS = (
        re.compile(r"^'((?:[^']|'')*)'@'((?:[^']|'')*)'$"),  # 'user'@'host'
        re.compile(r"^`((?:[^`]|``)*)`@`((?:[^`]|``)*)`$"),  # `user`@`host`
        re.compile(r"^([^@'`\s]+)@([^@'`\s]+)$"),  # user@host
        re.compile(r"^([^@'`\s]+)$"),  # user (any host: '%')
    )

    @classmethod
    def parse(cls, text: str) -> Account:
        if re.match(r"^\s*(''|``)?@", text):
            raise MlbridgeError("mlbridge: anonymous accounts ('') cannot use mlbridge: requests belong "
                                "to accounts; create a named account (CREATE USER 'name'@'host')")
        for form in cls._FORMS:
            found = form.match(text.strip())
            if found:
                user = found.group(1).replace("''", "'").replace("``", "`")
                host = found.group(2).replace("''", "'").replace("``", "`") if form.groups > 1 else "%"
                if not user:
                    raise MlbridgeError("mlbridge: anonymous accounts ('') cannot use mlbridge: requests belong "
                                        "to accounts; create a named account (CREATE USER 'name'@'host')")
                if "\x00" in user or "\x00" in host or len(user) > 128 or len(host) > 255:
                    raise MlbridgeError(f"mlbridge: {text!r} is not an account name")
                return cls(user, host)
        raise MlbridgeError(f"mlbridge: {text!r} is not an account: write it as user@host or 'user'@'host'")

    @property
    def name(self) -> str:
        """The account as CURRENT_USER() writes it, which is how requests name their owner."""
        return f"{self.user}@{self.host}"

    @property
    def sql(self) -> str:
        return f"{literal(self.user)}@{literal(self.host)}"


def literal(text: str) -> str:
    """A string literal for MySQL (the installer's sql_mode keeps backslash escapes on)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0") + "'"


def routine_name(account: str) -> str:
    """The attestation routine of `account` (user@host); routines/_attest.sql derives the same
    name from CURRENT_USER() with SHA2(..., 256)."""
    return "_as_" + hashlib.sha256(account.encode()).hexdigest()[:40]


def register(cur, schema: str, account: str, role: str, definer: str | None) -> str:
    """Create `account`'s attestation routine, let only it EXECUTE it, and record it. Idempotent."""
    routine = routine_name(account)
    quoted = f"`{schema.replace('`', '``')}`.`{routine}`"
    user, _, host = account.rpartition("@")
    who = f"DEFINER={definer} " if definer else ""
    cur.execute(f"DROP PROCEDURE IF EXISTS {quoted}")
    cur.execute(
        f"CREATE {who}PROCEDURE {quoted}() SQL SECURITY DEFINER MODIFIES SQL DATA "
        f"COMMENT {literal(('mlbridge: attests account ' + account)[:64])} "
        f"REPLACE INTO `{schema.replace('`', '``')}`.`attestations` (connection_id, account, login, attested_at) "
        f"VALUES (CONNECTION_ID(), {literal(account)}, USER(), NOW(6))"
    )
    cur.execute(f"GRANT EXECUTE ON PROCEDURE {quoted} TO {literal(user)}@{literal(host)}")
    cur.execute(
        f"INSERT INTO `{schema.replace('`', '``')}`.`accounts` (account, routine, role) VALUES (%s, %s, %s) "
        "ON DUPLICATE KEY UPDATE routine = VALUES(routine), role = VALUES(role)",
        (account, routine, role),
    )
    return routine


def flavor_of(cur) -> str:
    cur.execute("SELECT VERSION()")
    return "mariadb" if "mariadb" in cur.fetchone()[0].lower() else "mysql"


def grant(conn, schema: str, account: Account, role: str, definer: str | None) -> list[str]:
    """Grant `role` (mlbridge_user, mlbridge_admin or mlbridge_worker) to `account` so that it holds
    it at its next login, and register callers. Returns what was done, one line each."""
    if role not in ROLES.values():
        raise MlbridgeError(f"mlbridge: {role!r} is not one of mlbridge's roles ({', '.join(ROLES.values())})")
    cur = conn.cursor()
    done = []
    try:
        flavor = flavor_of(cur)
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s AND Host = %s", (account.user, account.host))
        if not cur.fetchall():
            raise MlbridgeError(f"mlbridge: there is no account {account.sql}: create it first "
                                f"(CREATE USER {account.sql} IDENTIFIED BY '...')")
        cur.execute(f"GRANT {role} TO {account.sql}")
        done.append(f"granted {role} to {account.sql}")
        done.append(_default_role(cur, flavor, account, role))
        if role in CALLER_ROLES:
            routine = register(cur, schema, account.name, role, definer)
            done.append(f"registered {account.name} (attestation routine {routine})")
        return done
    except mysql.connector.Error as exc:
        raise MlbridgeError(f"mlbridge: granting {role} to {account.sql} failed: {exc.msg}") from exc
    finally:
        cur.close()


def _default_role(cur, flavor: str, account: Account, role: str) -> str:
    if flavor == "mysql":
        # MySQL 8: a list of default roles; SET DEFAULT ROLE replaces it, so the old ones are kept.
        cur.execute("SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = %s AND HOST = %s",
                    (account.user, account.host))
        roles = {f"{literal(u)}@{literal(h)}" for u, h in cur.fetchall()} | {f"{literal(role)}@'%'"}
        cur.execute(f"SET DEFAULT ROLE {', '.join(sorted(roles))} TO {account.sql}")
        return f"{role} is among the default roles of {account.sql}"
    cur.execute("SELECT default_role FROM mysql.user WHERE User = %s AND Host = %s", (account.user, account.host))
    current = _text((cur.fetchone() or [""])[0] or "")
    if not current or current == role:
        cur.execute(f"SET DEFAULT ROLE {role} FOR {account.sql}")
        return f"{role} is the default role of {account.sql}"
    # One default role per account on MariaDB: give mlbridge's role to the one it has.
    cur.execute(f"GRANT {role} TO {literal(current)}")
    return f"{account.sql} has default role {current}: granted {role} to {current}"


def register_role_holders(cur, schema: str, flavor: str, definer: str | None) -> list[str]:
    """Register every account that holds mlbridge_user or mlbridge_admin, directly or through
    roles granted to it (accounts given the role by hand, or before accounts were registered).
    Grants are edges (grantee user, grantee host, role): on MariaDB (mysql.roles_mapping) a grantee
    with an empty host is a role; on MySQL (mysql.role_edges) a grantee that is itself granted to
    someone is taken for a role."""
    if flavor == "mysql":
        cur.execute("SELECT TO_USER, TO_HOST, FROM_USER, FROM_HOST FROM mysql.role_edges")
        edges = [tuple(_text(v) for v in row) for row in cur.fetchall()]
        granted = {(role, role_host) for _u, _h, role, role_host in edges}
        edges = [(u, h, role, (u, h) in granted) for u, h, role, _rh in edges]
    else:
        cur.execute("SELECT User, Host, Role FROM mysql.roles_mapping")
        edges = [(u, h, role, h == "") for u, h, role in (tuple(_text(v) for v in row) for row in cur.fetchall())]
    holders = set(CALLER_ROLES)
    for _ in range(8):  # roles granted to roles
        holders |= {user for user, _h, role, is_role in edges if is_role and role in holders}
    found = {}
    for user, host, role, is_role in edges:
        if role in holders and user and not is_role:
            found[f"{user}@{host}"] = role if role in CALLER_ROLES else "mlbridge_user"
    for account, role in sorted(found.items()):
        register(cur, schema, account, role, definer)
    return sorted(found)


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else value
