"""The bridge: claim chunks, score them on the model server, write the results back.

Delivery is at least once (a chunk whose bridge dies is claimed again when its lease expires);
results are exactly once, because a chunk is closed, and its results written, in one transaction
that only succeeds while this bridge's claim still holds, and results are keyed by (request, row).

Online rows (predict_row, priority 0) have a lane of their own: one thread and connection that
claims, scores and writes them one by one, so they never queue behind bulk chunks. For bulk
work, reading, scoring and writing overlap: a fetch thread claims chunks and reads their rows (its own
connection, binary protocol), the main thread converts and scores them (gRPC), and a write thread
loads the results and closes the chunks (its own connection). Bounded queues between them keep at
most a few chunks in flight. A housekeeping thread with a connection of its own sweeps expired
leases and syncs the catalog, so a lock it waits on never stalls scoring. When the queue is
empty the fetch thread parks on a connection of its own until a queueing routine wakes it
(wakeup.py), or until `idle_max` passes.
"""

from __future__ import annotations

import logging
import os
import queue as queues
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import mysql.connector

from .. import serving_client as sc
from ..config import Dsn
from ..db import close_quietly, connect, query
from ..db.install import data_schema
from ..errors import MlbridgeError
from ..serving_protocols import open_client
from . import rows as rowlib
from .catalog import Catalog, sync_catalog
from .heartbeat import Heartbeat
from .inbox import drain as drain_inbox
from .metrics import NoMetrics
from .metrics import start as start_metrics
from .queue import Chunk, Queue, backoff
from .rows import FLOAT_DTYPES
from .scoring import Done, Fail, Release, Retry, Work, decide
from .sink import ResultWriter, local_folder
from .source import Source
from .wakeup import Wakeup

log = logging.getLogger("mlbridge.bridge")

_END = object()  # closes a stage's input
ONLINE = (0, 0)  # predict_row's priority: the online lane's
BULK = (1, 32767)  # predict_scores (1) and predict_table (2): the pipeline's


@dataclass
class BridgeConfig:
    dsn: Dsn
    server: str
    claim_chunks: int = 2  # chunks claimed per transaction
    lease_seconds: int = 60
    idle_max: float = 0.5  # longest wait for work before looking at the queue again (push wakes sooner)
    housekeeping_every: float = 5.0  # lease sweep and catalog sync
    purge_every: float = 60.0  # request_purge(NULL): requests past the retention_days setting; 0: never
    rpc_timeout: float = 60.0
    metrics_port: int | None = None  # Prometheus /metrics
    in_flight: int = 2  # chunks waiting between two stages
    local_infile: bool = True  # results with LOAD DATA LOCAL where the server allows it
    server_security: sc.ClientSecurity | None = None  # TLS and token to the model server
    protocol: str = "tfserving"  # or "v2", the Open Inference Protocol (serving_protocols.py)


class _PredictTimer:
    """Adds up the Predict calls of one chunk (a refused batch is split and sent again)."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.seconds = 0.0

    def __call__(self, seconds: float) -> None:
        self.seconds += seconds
        self.metrics.predict(seconds)


class Broken(Exception):
    """A stage lost its database connection: the session ends and the bridge reconnects."""


# How long a bridge session may sit idle inside a transaction before MariaDB ends it and rolls
# the transaction back. The bridge's transactions run statement after statement (a claim, a
# chunk's close, a catalog sync): idle for milliseconds. A bridge frozen inside one (SIGSTOP, a
# paused VM, a swap storm) would otherwise hold its row locks for as long as it stays frozen, and
# every caller whose statement needs one would wait innodb_lock_wait_timeout (50 s) and fail with
# 1205, again and again. The inbox drain holds its transaction across its model server calls,
# so its session gets the model server deadline on top (Bridge._inbox_loop). The bridge
# reconnects once its session is ended, as after any lost connection. MySQL has no such
# variable: there a frozen bridge's locks stay until its connection closes.
IDLE_TRANSACTION_SECONDS = 30


def _connect(dsn: Dsn, idle_transaction_seconds: float = IDLE_TRANSACTION_SECONDS, **extra):
    conn = connect(dsn, **extra)
    cur = conn.cursor()
    try:
        cur.execute(f"SET SESSION idle_transaction_timeout = {max(1, round(idle_transaction_seconds))}")
    except mysql.connector.Error as exc:
        if exc.errno != 1193:  # ER_UNKNOWN_SYSTEM_VARIABLE: MySQL
            raise
    # Results statements are built with backslash escapes (bridge.sink).
    cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    # READ COMMITTED: the claim's SELECT ... FOR UPDATE SKIP LOCKED and the catalog's UPDATE then
    # lock only the rows they take, never the gaps and scanned rows REPEATABLE READ locks too. A
    # bridge stalled inside a transaction (a pause, a slow network) would otherwise block every
    # caller queueing new chunks into those gaps until innodb_lock_wait_timeout.
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cur.close()
    return conn


class Bridge:
    def __init__(self, config: BridgeConfig):
        self.config = config
        self.id = self._new_id()
        self.stopping = threading.Event()
        self.client = open_client(config.protocol, config.server, timeout=config.rpc_timeout,
                                  security=config.server_security)
        self.catalog = Catalog(self.client)
        self.data_schema = data_schema(config.dsn.database)
        self.folder = local_folder() if config.local_infile else None
        self.use_local = config.local_infile
        self.chunks_done = 0
        self.progress_at = time.monotonic()  # when a stage last did something
        self.metrics = NoMetrics()
        self._broken: BaseException | None = None
        self._session_lock = threading.Lock()
        self._purged_at = time.monotonic()  # the first purge a minute after start, not at once
        self._wakeups: list[Wakeup] = []  # the session's parked waits, which stop() ends

    # -- life cycle -------------------------------------------------------------------------

    @staticmethod
    def _new_id() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def stop(self, *_args) -> None:
        self.stopping.set()
        # A stage parked in a long wait for work (--idle-max) would see the stop only when its
        # wait runs out: end the waits now, from a thread (this may run in a signal handler).
        threading.Thread(target=self._interrupt_waits, name="mlbridge-stop", daemon=True).start()

    def _interrupt_waits(self) -> None:
        for wakeup in list(self._wakeups):
            wakeup.interrupt()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        log.info("bridge %s: queue %s, model server %s (%s)", self.id, self.config.dsn.redacted(), self.config.server,
                 self.config.protocol)
        # The online lane waits for the interpreter while the bulk threads convert and format:
        # hand it over every millisecond rather than every five (CPython's default).
        sys.setswitchinterval(0.001)
        # mysql-connector's C extension initializes the MySQL client library at its first
        # connection, which is not thread-safe: threads making their first connections together
        # crashed a bridge at start once (a NULL read in _mysql_connector). The first one is made
        # here, before any thread; a failure is the session loop's to report and retry.
        try:
            close_quietly(_connect(self.config.dsn))
        except Exception:  # noqa: BLE001
            pass
        self.metrics = start_metrics(self.config.metrics_port)
        heartbeat = Heartbeat(self.config.dsn, lambda: self.id, self.config.lease_seconds, lambda: self.progress_at)
        heartbeat.start()
        housekeeper = threading.Thread(target=self._housekeeping_loop, name="mlbridge-housekeeping", daemon=True)
        housekeeper.start()
        inbox = threading.Thread(target=self._inbox_loop, name="mlbridge-inbox", daemon=True)
        inbox.start()
        failures = 0
        try:
            while not self.stopping.is_set():
                try:
                    self._session()
                    failures = 0
                except (mysql.connector.Error, MlbridgeError, Broken) as exc:
                    failures += 1
                    self.metrics.db_error()
                    self._abandon(exc, failures)
        finally:
            self.stopping.set()
            heartbeat.stop()
            heartbeat.join(5)
            housekeeper.join(10)
            inbox.join(10)
            self.client.close()
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
        log.info("bridge %s stopped after %d chunks", self.id, self.chunks_done)

    def _abandon(self, exc: BaseException, failures: int) -> None:
        """A new identity stops the heartbeat renewing the chunks held until now: their leases
        run out and a sweep requeues them."""
        delay = backoff(failures, base=0.2, cap=5.0)
        log.warning("bridge: %s; reconnecting in %.1f s", exc, delay)
        self.id = self._new_id()
        self.stopping.wait(delay)

    # -- one connected session: three stages ---------------------------------------------------

    def _session(self) -> None:
        self._broken = None
        read_conn = _connect(self.config.dsn)
        write_conn = online_conn = None
        wakeup = Wakeup(self.config.dsn, self.id)
        online_wakeup = Wakeup(self.config.dsn, self.id)
        self._wakeups = [wakeup, online_wakeup]
        if self.stopping.is_set():  # stopped while this session was being set up
            self._interrupt_waits()
        writer = None
        try:
            online_conn = _connect(self.config.dsn)
            if self.use_local and self.folder is not None:
                write_conn = _connect(self.config.dsn, allow_local_infile_in_path=str(self.folder))
            else:
                write_conn = _connect(self.config.dsn)
            writer = ResultWriter(self.folder, use_local=self.use_local)
            owner = self.id
            scored: queues.Queue = queues.Queue(self.config.in_flight)
            outcomes: queues.Queue = queues.Queue(self.config.in_flight)
            fetch = threading.Thread(target=self._fetch_stage, name="mlbridge-fetch",
                                     args=(Queue(read_conn, owner, self.config.lease_seconds), read_conn, wakeup, scored))
            write = threading.Thread(target=self._write_stage, name="mlbridge-write",
                                     args=(Queue(write_conn, owner, self.config.lease_seconds), write_conn, writer,
                                           outcomes))
            online = threading.Thread(target=self._online_lane, name="mlbridge-online",
                                      args=(Queue(online_conn, owner, self.config.lease_seconds), online_conn,
                                            online_wakeup))
            fetch.start()
            write.start()
            online.start()
            self._score_stage(scored, outcomes)
            fetch.join()
            write.join()
            online.join()
            if writer is not None:
                self.use_local = writer.use_local
            if self._broken is not None:
                raise Broken(str(self._broken))
        finally:
            wakeup.close()
            online_wakeup.close()
            for conn in (read_conn, write_conn, online_conn):
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - a broken connection may fail to close
                        pass

    def _break(self, exc: BaseException) -> None:
        with self._session_lock:
            if self._broken is None:
                self._broken = exc

    def _fetch_stage(self, queue: Queue, conn, wakeup: Wakeup, out: queues.Queue) -> None:
        source = Source(conn, self.data_schema)
        try:
            while not self.stopping.is_set() and self._broken is None:
                started = time.monotonic()
                chunks = self._claim_or_wait(queue, wakeup, BULK)
                if chunks:  # time spent waiting for work is no claim's
                    self.metrics.stage("claim", time.monotonic() - started)
                for chunk in chunks:
                    out.put(self._read(chunk, conn, source))
        except Exception as exc:  # noqa: BLE001 - the database went away, or worse: reconnect
            if not isinstance(exc, (mysql.connector.Error, MlbridgeError)):
                log.exception("bridge: fetch stage")
            self._break(exc)
        finally:
            out.put(_END)

    def _claim_or_wait(self, queue: Queue, wakeup: Wakeup, priorities: tuple[int, int],
                       mark_running: bool = True) -> list[Chunk]:
        """Chunks of these priorities, now ours; or, when there are none, a wait until queueing
        wakes us (or idle_max passes) and no chunk. Parking first and looking once more means
        work queued in between is not missed."""
        chunks = queue.claim(self.config.claim_chunks, priorities, mark_running)
        if chunks:
            return chunks
        self.progress_at = time.monotonic()
        wakeup.arm()
        chunks = queue.claim(self.config.claim_chunks, priorities, mark_running)
        if not chunks:
            wakeup.wait(self.config.idle_max)
        return chunks

    def _online_lane(self, queue: Queue, conn, wakeup: Wakeup) -> None:
        """predict_row's chunks, one after another on a connection of their own, claimed, scored
        and written by this thread alone: an online row never waits behind bulk chunks in the
        pipeline's queues."""
        source = Source(conn, self.data_schema)
        writer = ResultWriter(None, use_local=False)
        try:
            while not self.stopping.is_set() and self._broken is None:
                for chunk in self._claim_or_wait(queue, wakeup, ONLINE, mark_running=False):
                    work = self._read(chunk, conn, source, online=True)
                    self._apply(queue, source, writer, chunk, decide(work, self.client, self.metrics.predict))
                self.progress_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the database went away, or worse: reconnect
            if not isinstance(exc, (mysql.connector.Error, MlbridgeError)):
                log.exception("bridge: online lane")
            self._break(exc)

    def _read(self, chunk: Chunk, conn, source: Source, online: bool = False) -> Work:
        """A chunk's rows and model; a failure of this chunk alone travels with it."""
        try:
            started = time.monotonic()
            if online:
                spec, rows = source.online_request(chunk)
                model = self.catalog.model(conn, chunk.model_name, chunk.model_version, spec)
                return Work(chunk, rows, model)
            spec = self.catalog.request(conn, chunk.request_id)
            model = self.catalog.model(conn, chunk.model_name, chunk.model_version, spec)
            rows = source.read(chunk, spec, all(i.dtype in FLOAT_DTYPES for i in model.inputs))
            self.metrics.stage("read", time.monotonic() - started)
            return Work(chunk, rows, model)
        except (mysql.connector.Error, MlbridgeError) as exc:
            if isinstance(exc, sc.ServingError):
                if not isinstance(exc, sc.ServerUnavailable):
                    self.catalog.forget(chunk.model_name, chunk.model_version)
                return Work(chunk, error=exc)
            if isinstance(exc, mysql.connector.Error) and exc.errno is not None and exc.errno < 2000 \
                    and exc.errno not in (1205, 1213, 1317):
                return Work(chunk, error=exc)  # the server refused this chunk's statement, not the connection
            raise
        except Exception as exc:  # noqa: BLE001 - this chunk's trouble is this chunk's alone
            return Work(chunk, error=exc)

    def _score_stage(self, inbox: queues.Queue, out: queues.Queue) -> None:
        try:
            while (work := inbox.get()) is not _END:
                if self.stopping.is_set() or self._broken is not None:
                    out.put((work.chunk, Release(0, "the bridge is stopping")))
                    continue
                started = time.monotonic()
                timer = _PredictTimer(self.metrics)
                outcome = decide(work, self.client, timer)
                self.metrics.stage("predict", timer.seconds)
                self.metrics.stage("convert", time.monotonic() - started - timer.seconds)
                out.put((work.chunk, outcome))
                self.progress_at = time.monotonic()
        finally:
            out.put(_END)

    def _write_stage(self, queue: Queue, conn, writer: ResultWriter, inbox: queues.Queue) -> None:
        source = Source(conn, self.data_schema)
        while (item := inbox.get()) is not _END:
            if self._broken is not None:
                continue  # abandoned: the leases run out
            chunk, outcome = item
            try:
                started = time.monotonic()
                self._apply(queue, source, writer, chunk, outcome)
                self.metrics.stage("write", time.monotonic() - started)
                self.progress_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - reconnect; the chunks left expire
                if not isinstance(exc, (mysql.connector.Error, MlbridgeError)):
                    log.exception("bridge: write stage")
                self._break(exc)

    def _apply(self, queue: Queue, source: Source, writer: ResultWriter, chunk: Chunk, outcome) -> None:
        if isinstance(outcome, Done):
            started = time.monotonic()
            if queue.close(chunk, outcome.results, writer):
                self.chunks_done += 1
                failed = sum(1 for r in outcome.results if r.error is not None)
                self.metrics.rows(len(outcome.results) - failed, failed)
                self.metrics.chunk("done", time.monotonic() - started)
            else:
                self.metrics.chunk("lost")
                log.warning("bridge: lost the claim on chunk %d (lease expired or request cancelled); "
                            "its results were not written", chunk.id)
        elif isinstance(outcome, Release):
            if outcome.delay:
                log.warning("bridge: %s; chunk %d back to the queue in %.1f s", outcome.reason, chunk.id,
                            outcome.delay)
            queue.release(chunk, outcome.delay)
            self.metrics.chunk("released")
        elif isinstance(outcome, Retry):
            log.warning("bridge: chunk %d attempt %d: %s; retrying in %.1f s", chunk.id, chunk.attempts,
                        outcome.message, outcome.delay)
            queue.retry(chunk, outcome.message, outcome.delay)
            self.metrics.chunk("retried")
        elif isinstance(outcome, Fail):
            queue.record_error(chunk, outcome.message)
            self.fail_chunk(queue, source, writer, chunk, outcome.message)

    def fail_chunk(self, queue: Queue, source: Source, writer: ResultWriter, chunk: Chunk, message: str) -> None:
        """Fail every row of the chunk that has no result yet, with the message."""
        try:
            spec = self.catalog.request(queue.conn, chunk.request_id)
            seqs = source.seqs(chunk, spec)
        except LookupError:
            seqs = []
        failed = [rowlib.Result(seq, error=message) for seq in seqs]
        if queue.close(chunk, failed, writer, state="failed", error=message):
            self.metrics.rows(0, len(failed))
            self.metrics.chunk("failed")
        else:
            self.metrics.chunk("lost")

    # -- trigger streams ---------------------------------------------------------------------

    def _inbox_loop(self) -> None:
        """Drain mlbridge.inbox (inbox.py) on a connection of its own: at once while rows keep
        coming, else every idle_max seconds (triggers cannot wake the bridges)."""
        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    # Idle in its transaction while the model server scores: its deadline on top.
                    conn = _connect(self.config.dsn,
                                    idle_transaction_seconds=IDLE_TRANSACTION_SECONDS + self.config.rpc_timeout)
                if drain_inbox(conn, self.client, self.catalog) == 0:
                    self.stopping.wait(self.config.idle_max)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("bridge: inbox: %s", exc)
                close_quietly(conn)
                conn = None
                self.stopping.wait(2)
        close_quietly(conn)

    # -- housekeeping ------------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        conn = None
        catalog_sync = True
        while not self.stopping.wait(0 if conn is None else self.config.housekeeping_every):
            try:
                if conn is None:
                    conn = _connect(self.config.dsn)
                    cur = conn.cursor()
                    # Housekeeping waits on nobody for long: what it cannot lock now, it does next time.
                    cur.execute("SET SESSION innodb_lock_wait_timeout = 5")
                    cur.close()
                catalog_sync = self.housekeeping(conn, catalog_sync)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("bridge: housekeeping: %s", exc)
                close_quietly(conn)
                conn = None
                self.stopping.wait(2)
        close_quietly(conn)

    def housekeeping(self, conn, catalog_sync: bool = True) -> bool:
        """Sweep expired leases (failing chunks whose attempts are used up) and sync the catalog;
        False once the model server turned out to have no catalog to sync from."""
        queue = Queue(conn, self.id, self.config.lease_seconds)
        writer = ResultWriter(None, use_local=False)
        source = Source(conn, self.data_schema)
        for chunk, note in queue.sweep():
            log.warning("bridge: chunk %d of request %d used its %d attempts", chunk.id, chunk.request_id,
                        chunk.max_attempts)
            self.fail_chunk(queue, source, writer, chunk, note)
        cur = conn.cursor()
        cur.execute(query("forget_stale_parkers"))
        cur.close()
        if self.config.purge_every > 0 and time.monotonic() - self._purged_at >= self.config.purge_every:
            self._purged_at = time.monotonic()
            purged = self.purge(conn)
            if purged[0]:
                log.info("bridge: purged %d finished requests past their retention (%d rows)", *purged)
        if catalog_sync:
            try:
                sync_catalog(conn, self.client)
            except sc.ServingError as exc:
                if exc.code.name == "UNIMPLEMENTED":
                    log.info("bridge: the model server cannot list its models; the catalog comes from the trainer")
                    return False
                log.warning("bridge: catalog sync: %s", exc)
        return True


    @staticmethod
    def purge(conn) -> tuple[int, int]:
        """Purge requests past the retention_days setting (routines/request_purge.sql, in batches
        of at most 10,000 rows); (requests, rows) purged."""
        cur = conn.cursor()
        try:
            cur.callproc("request_purge", (None,))
            found = (0, 0)
            for result in cur.stored_results():
                found = tuple(int(v) for v in result.fetchone())
            return found
        finally:
            cur.close()


__all__ = ["Bridge", "BridgeConfig"]
