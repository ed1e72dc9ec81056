"""A bridge waiting for work parks one connection in a SLEEP that the queueing routines end with
KILL QUERY (sql/routines/_wake_bridges.sql): new work is claimed about a millisecond after it is
queued, and an idle bridge costs the database one short statement per `seconds`. Where the
routines may not kill (their definer lacks PROCESS and CONNECTION ADMIN), the sleep simply runs
out and the bridge polls at that pace."""

from __future__ import annotations

import logging

import mysql.connector

from ..config import Dsn
from ..db import connect, query

log = logging.getLogger("mlbridge.bridge")

# ER_QUERY_INTERRUPTED: how MariaDB ends a statement stopped by KILL QUERY (MySQL returns 1 from
# the SLEEP instead).
INTERRUPTED = 1317


class Wakeup:
    def __init__(self, dsn: Dsn, bridge: str):
        self.dsn = dsn
        self.bridge = bridge
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            try:
                cur = self.conn.cursor()
                cur.execute(query("unpark"))
                cur.close()
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.conn = None

    def arm(self) -> None:
        """Say this bridge is about to wait; work queued from now on wakes it."""
        if self.conn is None:
            self.conn = connect(self.dsn)
        cur = self.conn.cursor()
        try:
            cur.execute(query("park"), (self.bridge,))
        finally:
            cur.close()

    def wait(self, seconds: float) -> bool:
        """Sleep until woken or `seconds` pass; True when woken. Call arm() first, then look at
        the queue once more, then wait: work queued in between is not missed."""
        assert self.conn is not None
        cur = self.conn.cursor()
        try:
            cur.execute(query("wait_for_work"), (float(seconds),))
            found = cur.fetchall()
            return bool(found) and found[0][0] in (1, 2)  # 2: woken before sleeping; 1: sleep interrupted
        except mysql.connector.Error as exc:
            if exc.errno == INTERRUPTED:
                return True
            raise
        finally:
            cur.close()
