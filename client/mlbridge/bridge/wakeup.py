"""A bridge waiting for work parks one connection in a wait that the queueing routines end with
KILL QUERY (sql/routines/_wake_bridges.sql): new work is claimed about a millisecond after it is
queued, and an idle bridge costs the database one short statement per `seconds`. Where the
routines may not kill (their definer lacks PROCESS and CONNECTION ADMIN), the wait simply runs
out and the bridge polls at that pace.

The wait is `GET_LOCK` on a user lock that a second connection of the same Wakeup holds, not
`SLEEP()`: every SLEEP on a MariaDB server waits under one server-wide mutex, and a KILL that
finds it taken backs off and retries, which delayed about one wake-up in fifty by two seconds
here. A lock wait is killed under the waiting session's own mutex.

A bridge that stops (SIGTERM) must not sit out its wait: ``interrupt()``, from another thread,
has the holder connection release the lock, so the wait ends at once, and every later wait
returns without waiting.
"""

from __future__ import annotations

import logging
import threading

import mysql.connector

from ..config import Dsn
from ..db import connect, query

log = logging.getLogger("mlbridge.bridge")

# ER_QUERY_INTERRUPTED: how MariaDB ends a statement stopped by KILL QUERY (MySQL makes the
# GET_LOCK return NULL instead).
INTERRUPTED = 1317


class Wakeup:
    def __init__(self, dsn: Dsn, bridge: str):
        self.dsn = dsn
        self.bridge = bridge
        self.conn = None  # parks
        self.holder = None  # holds the lock the parked connection waits for
        self.lock = ""
        self.woken = False
        self.interrupted = False
        # Guards the holder connection, which interrupt() uses from another thread.
        self._guard = threading.Lock()

    def close(self) -> None:
        with self._guard:
            for conn in (self.conn, self.holder):
                if conn is None:
                    continue
                try:
                    if conn is self.conn:
                        cur = conn.cursor()
                        cur.execute(query("unpark"))
                        cur.close()
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass
            self.conn = self.holder = None

    def interrupt(self) -> None:
        """End the wait now and every wait from now on (the bridge is stopping). Thread-safe."""
        with self._guard:
            self.interrupted = True
            if self.holder is None:
                return
            try:
                cur = self.holder.cursor()
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.lock,))
                cur.fetchall()
                cur.close()
            except Exception as exc:  # noqa: BLE001 - a broken holder: the wait runs out by itself
                log.debug("bridge: could not end a parked wait: %s", exc)

    def _open(self) -> None:
        with self._guard:
            self.conn = connect(self.dsn)
            self.holder = connect(self.dsn)
            cur = self.conn.cursor()
            cur.execute("SELECT CONNECTION_ID()")
            self.lock = f"mlbridge_park_{cur.fetchone()[0]}"
            cur.close()
            cur = self.holder.cursor()
            cur.execute("SELECT GET_LOCK(%s, 0)", (self.lock,))
            cur.fetchall()
            cur.close()

    def arm(self) -> None:
        """Say this bridge is about to wait; work queued from now on wakes it.

        A waker looks for the waiting statement and then kills it: between the two, the wait
        may have ended and this connection gone on to park again, and that statement is killed
        instead. Such a kill is a wake-up like any other, never an error."""
        if self.conn is None:
            self._open()
        self.woken = False
        cur = self.conn.cursor()
        try:
            cur.execute(query("park"), (self.bridge,))
        except mysql.connector.Error as exc:
            if exc.errno != INTERRUPTED:
                raise
            self.woken = True
        finally:
            cur.close()

    def wait(self, seconds: float) -> bool:
        """Wait until woken or `seconds` pass; True when woken. Call arm() first, then look at
        the queue once more, then wait: work queued in between is not missed."""
        assert self.conn is not None
        if self.woken or self.interrupted:
            return True
        cur = self.conn.cursor()
        try:
            cur.execute(query("wait_for_work"), (self.lock, float(seconds)))
            found = cur.fetchall()
        except mysql.connector.Error as exc:
            if exc.errno == INTERRUPTED:
                return True
            raise
        finally:
            cur.close()
        value = found[0][0] if found else 0
        if value == 1:  # the lock was free: its holder is gone; start again next time
            self.close()
        return value == 2 or value is None
