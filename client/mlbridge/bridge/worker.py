"""The bridge's loop: claim chunks, score them on the model server, write the results back.

Delivery is at least once (a chunk whose bridge dies is claimed again when its lease expires);
results are exactly once, because a chunk is closed, and its results written, in one transaction
that only succeeds while this bridge's claim still holds, and results are keyed by (request, row).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import mysql.connector

from .. import serving_client as sc
from ..config import Dsn
from ..db import connect
from ..errors import MlbridgeError
from . import rows as rowlib
from .catalog import sync_catalog
from .heartbeat import Heartbeat
from .metrics import NoMetrics
from .metrics import start as start_metrics
from .queue import Chunk, Queue, backoff

log = logging.getLogger("mlbridge.bridge")


@dataclass
class BridgeConfig:
    dsn: Dsn
    server: str
    claim_chunks: int = 2  # chunks claimed per transaction
    lease_seconds: int = 60
    idle_min: float = 0.005  # poll interval right after work ...
    idle_max: float = 0.25  # ... growing to this while the queue stays empty
    housekeeping_every: float = 5.0  # lease sweep and catalog sync
    rpc_timeout: float = 60.0
    metrics_port: int | None = None  # Prometheus /metrics


class Bridge:
    def __init__(self, config: BridgeConfig):
        self.config = config
        self.id = self._new_id()
        self.stopping = threading.Event()
        self.client = sc.ModelServerClient(config.server, timeout=config.rpc_timeout)
        self.conn = None
        self.queue: Queue | None = None
        self._specs: dict[int, list[str]] = {}
        self._signatures: dict[tuple[str, int], sc.Signature] = {}
        self._score_outputs: dict[tuple[str, int], str | None] = {}
        self._catalog_sync = True
        self.chunks_done = 0
        self.progress_at = time.monotonic()  # when the loop last finished a round
        self.metrics = NoMetrics()

    # -- life cycle -------------------------------------------------------------------------

    @staticmethod
    def _new_id() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def _connect(self) -> None:
        self.conn = connect(self.config.dsn)
        cur = self.conn.cursor()
        # The results statement is built with backslash escapes (bridge.queue.results_values).
        cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        cur.close()
        self.queue = Queue(self.conn, self.id, self.config.lease_seconds)

    def stop(self, *_args) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        log.info("bridge %s: queue %s, model server %s", self.id, self.config.dsn.redacted(), self.config.server)
        self.metrics = start_metrics(self.config.metrics_port)
        heartbeat = Heartbeat(self.config.dsn, lambda: self.id, self.config.lease_seconds, lambda: self.progress_at)
        heartbeat.start()
        try:
            self._loop()
        finally:
            heartbeat.stop()
            heartbeat.join(5)
            self.client.close()
            if self.conn is not None:
                self.conn.close()
        log.info("bridge %s stopped after %d chunks", self.id, self.chunks_done)

    def _loop(self) -> None:
        idle = self.config.idle_min
        failures = 0
        next_housekeeping = 0.0
        while not self.stopping.is_set():
            try:
                if self.conn is None:
                    self._connect()
                if time.monotonic() >= next_housekeeping:
                    self.housekeeping()
                    next_housekeeping = time.monotonic() + self.config.housekeeping_every
                worked = self.step()
                self.progress_at = time.monotonic()
                failures = 0
            except (mysql.connector.Error, MlbridgeError) as exc:
                # The database went away (or refused us): drop the connection and come back.
                # Chunks we held are returned by their lease running out.
                failures += 1
                self.metrics.db_error()
                delay = backoff(failures, base=0.2, cap=5.0)
                log.warning("bridge: %s; reconnecting in %.1f s", exc, delay)
                self._abandon(delay)
                continue
            except Exception:  # noqa: BLE001 - a worker outlives what it did not foresee
                failures += 1
                self.metrics.db_error()
                delay = backoff(failures, base=0.2, cap=5.0)
                log.exception("bridge: unexpected error; reconnecting in %.1f s", delay)
                self._abandon(delay)
                continue
            if worked:
                idle = self.config.idle_min
            else:
                self.stopping.wait(idle * random.uniform(0.8, 1.2))
                idle = min(idle * 2, self.config.idle_max)

    def _abandon(self, delay: float) -> None:
        """Drop the connection and what was in flight on it. A new identity stops the heartbeat
        renewing the chunks held until now: their leases run out and a sweep requeues them."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass
        self.conn = None
        self.id = self._new_id()
        self.stopping.wait(delay)

    def housekeeping(self) -> None:
        assert self.queue is not None
        for chunk, note in self.queue.sweep():
            log.warning("bridge: chunk %d of request %d used its %d attempts", chunk.id, chunk.request_id,
                        chunk.max_attempts)
            self._fail_chunk(chunk, note)
        if self._catalog_sync:
            try:
                sync_catalog(self.conn, self.client)
            except sc.ServingError as exc:
                if exc.code.name == "UNIMPLEMENTED":
                    log.info("bridge: the model server cannot list its models; the catalog comes from the trainer")
                    self._catalog_sync = False
                else:
                    log.warning("bridge: catalog sync: %s", exc)

    # -- one round ----------------------------------------------------------------------------

    def step(self) -> bool:
        """Claim and score up to claim_chunks chunks; False when there was nothing to do."""
        assert self.queue is not None
        chunks = self.queue.claim(self.config.claim_chunks)
        for i, chunk in enumerate(chunks):
            if self.stopping.is_set():
                for rest in chunks[i:]:  # give back what we will not score
                    self.queue.release(rest, 0)
                break
            self.process(chunk)
        return bool(chunks)

    def process(self, chunk: Chunk) -> None:
        assert self.queue is not None
        started = time.monotonic()
        try:
            results = self.score(chunk)
        except sc.ServerUnavailable as exc:
            delay = backoff(chunk.attempts, base=0.5, cap=10.0)
            log.warning("bridge: model server unavailable (%s); chunk %d back to the queue in %.1f s",
                        exc.details, chunk.id, delay)
            self.queue.release(chunk, delay)
            self.metrics.chunk("released")
            return
        except (sc.ModelNotFound, sc.ServingError) as exc:
            message = f"mlbridge: model {chunk.model}: {exc.details}"
            if chunk.attempts < chunk.max_attempts:
                delay = backoff(chunk.attempts, base=1.0, cap=30.0)
                log.warning("bridge: chunk %d attempt %d: %s; retrying in %.1f s", chunk.id, chunk.attempts,
                            message, delay)
                self._signatures.pop((chunk.model_name, chunk.model_version), None)
                self.queue.retry(chunk, message, delay)
                self.metrics.chunk("retried")
            else:
                self.queue.record_error(chunk, message)
                self._fail_chunk(chunk, message)
            return
        if self.queue.close(chunk, results):
            self.chunks_done += 1
            failed = sum(1 for r in results if r[4] is not None)
            self.metrics.rows(len(results) - failed, failed)
            self.metrics.chunk("done", time.monotonic() - started)
        else:
            self.metrics.chunk("lost")
            log.warning("bridge: lost the claim on chunk %d (lease expired or request cancelled); "
                        "its results were not written", chunk.id)

    def _fail_chunk(self, chunk: Chunk, message: str) -> None:
        assert self.queue is not None
        failed = [(seq, key, None, None, message) for seq, key, _ in self.queue.rows(chunk)]
        if self.queue.close(chunk, failed, state="failed", error=message):
            self.metrics.rows(0, len(failed))
            self.metrics.chunk("failed")
        else:
            self.metrics.chunk("lost")

    # -- scoring -----------------------------------------------------------------------------

    def _request_inputs(self, request_id: int) -> list[str]:
        names = self._specs.get(request_id)
        if names is None:
            found = self.queue.fetch_one("request_spec", (request_id,))
            names = json.loads(found[0]) if found and found[0] else []
            if len(self._specs) > 1000:
                self._specs.clear()
            self._specs[request_id] = names
        return names

    def _signature(self, chunk: Chunk) -> tuple[sc.Signature, str | None]:
        key = (chunk.model_name, chunk.model_version)
        if key not in self._signatures:
            signature = self.client.metadata(chunk.model_name, chunk.model_version)
            found = self.queue.fetch_one("model_outputs", key)
            configured = found[0] if found else None
            self._signatures[key] = signature
            self._score_outputs[key] = rowlib.pick_score_output([o.name for o in signature.outputs], configured)
        return self._signatures[key], self._score_outputs[key]

    def score(self, chunk: Chunk) -> list[tuple]:
        """Result rows (seq, key, score, output, error) for every unscored row of the chunk."""
        assert self.queue is not None
        rows = [rowlib.Row(seq, key, features) for seq, key, features in self.queue.rows(chunk)]
        if not rows:
            return []
        names = self._request_inputs(chunk.request_id)
        signature, score_output = self._signature(chunk)
        dtypes = {spec.name: spec.dtype for spec in signature.inputs}
        if set(dtypes) != set(names):
            message = (f"mlbridge: model {chunk.model} takes inputs {sorted(dtypes)}, but the request "
                       f"carries {sorted(names)}; the catalog entry is out of date")
            return [(r.seq, r.key, None, None, message) for r in rows]
        batch = rowlib.build_batch(rows, names, dtypes)
        results = [(f.seq, f.key, None, None, f.error) for f in batch.failed]
        if batch.rows:
            results.extend(self._predict(chunk, batch.rows, batch.inputs, score_output))
        results.sort(key=lambda r: r[0])
        return results

    def _predict(self, chunk: Chunk, rows: list[rowlib.Row], inputs: dict, score_output: str | None) -> list[tuple]:
        """Score rows; when the server refuses the batch, split it to find the rows at fault, so
        one bad row fails alone and the rest are scored."""
        started = time.monotonic()
        try:
            outputs = self.client.predict(chunk.model_name, chunk.model_version, inputs)
            self.metrics.predict(time.monotonic() - started)
        except (sc.InvalidRequest, sc.MessageTooLarge) as exc:
            if len(rows) == 1:
                return [(rows[0].seq, rows[0].key, None, None, f"mlbridge: the model refused this row: {exc.details}")]
            half = len(rows) // 2
            return (self._predict(chunk, rows[:half], {k: v[:half] for k, v in inputs.items()}, score_output)
                    + self._predict(chunk, rows[half:], {k: v[half:] for k, v in inputs.items()}, score_output))
        try:
            return list(rowlib.result_rows(rows, outputs, score_output))
        except ValueError as exc:
            return [(r.seq, r.key, None, None, f"mlbridge: {exc}") for r in rows]
