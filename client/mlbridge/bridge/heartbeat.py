"""The bridge's heartbeat: a thread with a connection of its own that extends the leases of the
chunks its bridge holds, every third of a lease. A bridge that dies stops beating and its chunks
expire; a bridge that is merely slow (a big model, a slow server) keeps them.

The heartbeat renews only while the bridge's loop shows signs of life (`last_progress()` within
`max_silence` seconds), so a bridge stuck for good does not hold its chunks forever. `owner()`
is read at each beat: a bridge that loses its database takes a new identity when it reconnects,
so the chunks it held when the connection broke are no longer renewed and expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..config import Dsn
from ..db import connect, query

log = logging.getLogger("mlbridge.bridge")


class Heartbeat(threading.Thread):
    def __init__(self, dsn: Dsn, owner: Callable[[], str], lease_seconds: int, last_progress: Callable[[], float],
                 max_silence: float = 600.0):
        super().__init__(name="mlbridge-heartbeat", daemon=True)
        self.dsn = dsn
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.last_progress = last_progress
        self.max_silence = max_silence
        self.stopping = threading.Event()
        self.beats = 0

    def stop(self) -> None:
        self.stopping.set()

    def beat(self, conn) -> int:
        """Extend this bridge's claims once; the number of chunks it holds."""
        cur = conn.cursor()
        try:
            cur.execute(query("renew_leases"), (self.lease_seconds, self.owner()))
            self.beats += 1
            return cur.rowcount
        finally:
            cur.close()

    def run(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        conn = None
        while not self.stopping.wait(interval):
            if time.monotonic() - self.last_progress() > self.max_silence:
                log.warning("bridge %s: no progress for %.0f s; leases are left to expire", self.owner(),
                            self.max_silence)
                continue
            try:
                if conn is None:
                    conn = connect(self.dsn)
                self.beat(conn)
            except Exception as exc:  # noqa: BLE001 - a lost database: try again next beat
                log.warning("bridge %s: heartbeat: %s", self.owner(), exc)
                conn = None
        if conn is not None:
            conn.close()
