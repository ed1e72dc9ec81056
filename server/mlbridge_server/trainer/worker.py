"""`mlbridge trainer`: the worker that runs the jobs of train_model, score_model and explain_model.

One job at a time (training takes the machine's cores). A job is claimed with a lease, as the
bridge claims chunks; a heartbeat thread with a connection of its own renews the lease, writes
the latest progress into requests.progress (what request_status shows), and notices when the
claim is gone (request_cancel, or a lease that ran out), which stops the training at its next
epoch with nothing exported. A worker that dies leaves a lease that runs out: another worker's
sweep gives the job back (attempts + 1) or fails it when its attempts are used up.

The rows are read from the job's copy, {data}.rows_<id>, which the routine made with the
caller's privileges; the worker reads it with its own (role mlbridge_worker).

Errors the caller can fix (MlbridgeError: a label that is no column, a model that cannot be
trained on these rows) fail the job at once with their message; anything else (a lost database)
gives the job back for another attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from mlbridge.config import Dsn
from mlbridge.db import close_quietly, connect, quote_ident
from mlbridge.db.install import data_schema
from mlbridge.errors import MlbridgeError

from .jobs import Job, JobQueue
from .progress import Cancelled, Hooks

log = logging.getLogger("mlbridge.trainer")

# The order metrics are listed in (score_model's result set); others follow by name.
METRIC_ORDER = ["mae", "rmse", "r2", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
EXPLAIN_ROWS = 100_000


class _Beat(threading.Thread):
    """The job's heartbeat: renews the lease, writes progress, notices a lost claim."""

    def __init__(self, dsn: Dsn, worker: str, job: Job, lease_seconds: int):
        super().__init__(name=f"mlbridge-trainer-beat-{job.request_id}", daemon=True)
        self.dsn, self.worker, self.job, self.lease_seconds = dsn, worker, job, lease_seconds
        self.stopping = threading.Event()
        self.lost = threading.Event()
        self.latest: dict = {}
        self.written: dict = {}
        self.lock = threading.Lock()

    def run(self) -> None:
        conn = None
        interval = max(0.5, min(2.0, self.lease_seconds / 3))
        while not self.stopping.wait(interval):
            try:
                if conn is None:
                    conn = connect(self.dsn)
                queue = JobQueue(conn, self.worker, self.lease_seconds)
                if not queue.renew(self.job):
                    self.lost.set()
                    return
                with self.lock:
                    latest = dict(self.latest)
                if latest != self.written:
                    queue.progress(self.job, latest)
                    self.written = latest
            except Exception as exc:  # noqa: BLE001 - a lost database: the next beat tries again
                log.warning("trainer: heartbeat of request %d: %s", self.job.request_id, exc)
                conn = None
        close_quietly(conn)


class _JobHooks(Hooks):
    def __init__(self, beat: _Beat):
        self.beat = beat

    def report(self, **progress) -> None:
        with self.beat.lock:
            if progress.get("phase") != self.beat.latest.get("phase") or "epoch" in progress:
                self.beat.latest = {k: v for k, v in progress.items() if v is not None}

    def cancelled(self) -> bool:
        return self.beat.lost.is_set()


class TrainerWorker:
    def __init__(self, dsn: Dsn, model_base: Path, *, lease_seconds: int = 60, poll: float = 1.0,
                 sweep_every: float = 10.0):
        self.dsn = dsn
        self.model_base = Path(model_base)
        self.lease_seconds = lease_seconds
        self.poll = poll
        self.sweep_every = sweep_every
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.jobs_done = 0

    def stop(self, *_args) -> None:
        self.stopping.set()

    def run(self, max_jobs: int | None = None) -> None:
        log.info("trainer %s: watching for jobs in %s", self.id, self.dsn.redacted())
        conn = None
        swept = 0.0
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = connect(self.dsn)
                queue = JobQueue(conn, self.id, self.lease_seconds)
                if time.monotonic() - swept >= self.sweep_every:
                    swept = time.monotonic()
                    for request_id in queue.sweep():
                        log.warning("trainer: request %d failed: its workers kept stopping", request_id)
                job = queue.claim()
                if job is None:
                    self.stopping.wait(self.poll)
                    continue
                self.run_job(queue, job)
                self.jobs_done += 1
                if max_jobs is not None and self.jobs_done >= max_jobs:
                    return
            except Exception as exc:  # noqa: BLE001 - a lost database: reconnect and go on
                log.warning("trainer: %s", exc)
                close_quietly(conn)
                conn = None
                self.stopping.wait(2)
        close_quietly(conn)

    def run_job(self, queue: JobQueue, job: Job) -> None:
        log.info("trainer: request %d: %s %s on %d rows (attempt %d)", job.request_id, job.kind, job.model_name,
                 job.rows_total, job.attempts)
        beat = _Beat(self.dsn, self.id, job, self.lease_seconds)
        hooks = _JobHooks(beat)
        beat.start()
        try:
            result, version = self.execute(job, hooks)
        except Cancelled:
            log.info("trainer: request %d was cancelled", job.request_id)
            return
        except MlbridgeError as exc:
            log.info("trainer: request %d failed: %s", job.request_id, exc)
            queue.failed(job, str(exc), beat.latest or None)
            return
        except Exception as exc:  # noqa: BLE001 - not the caller's doing: another attempt
            message = f"mlbridge: the trainer failed: {type(exc).__name__}: {exc}"
            log.exception("trainer: request %d", job.request_id)
            if job.attempts < job.max_attempts:
                queue.retry(job, message, delay=min(60, 5 * job.attempts))
            else:
                queue.failed(job, message, beat.latest or None)
            return
        finally:
            beat.stopping.set()
            beat.join(5)
            _release_memory()
        if not queue.done(job, result, version, {"phase": "done"}):
            log.info("trainer: request %d: the claim was gone when it finished; nothing written", job.request_id)
        else:
            log.info("trainer: request %d done", job.request_id)

    # -- the work --------------------------------------------------------------------------

    def _rows_query(self, queue: JobQueue, job: Job) -> str:
        schema = data_schema(self.dsn.database)
        if not job.rows_table:
            raise MlbridgeError(f"mlbridge: request {job.request_id} has no rows table")
        columns = queue.columns(schema, job.rows_table)
        return (f"SELECT {', '.join(quote_ident(c) for c in columns)} "
                f"FROM {quote_ident(schema)}.{quote_ident(job.rows_table)}")

    def execute(self, job: Job, hooks: Hooks) -> tuple[dict, int | None]:
        conn = connect(self.dsn)
        try:
            rows_query = self._rows_query(JobQueue(conn, self.id), job)
        finally:
            conn.close()
        options = job.options or {}
        if job.kind == "train":
            from .training import train

            trained = train(
                self.dsn, rows_query, job.label, job.model_name, self.model_base, key=job.key,
                epochs=options.get("epochs"), seed=int(options.get("seed", 0)), task=options.get("task"),
                model_type=options.get("model_type", "auto"), progress=False, hooks=hooks,
                trained_on=job.query, trained_by=job.owner,
            )
            metrics = {**trained.metrics, "rows_train": trained.rows_train, "rows_test": trained.rows_test}
            return ({"model": trained.name, "version": trained.version, "model_type": trained.model_type,
                     "task": trained.task, "metrics": metric_rows(metrics)}, trained.version)
        model = f"{job.model_name}:{job.model_version}"
        key = (job.key or "id") if options.get("test_only") else None
        if job.kind == "score":
            from .evaluation import evaluate

            hooks.report(phase="scoring", rows=job.rows_total)
            measured = evaluate(self.dsn, rows_query, job.label, model, self.model_base, key=key)
            return {"metrics": metric_rows(measured)}, None
        from .evaluation import explain

        hooks.report(phase="explaining", rows=min(job.rows_total, EXPLAIN_ROWS))
        found = explain(self.dsn, rows_query, job.label, model, self.model_base, key=key,
                        seed=int(options.get("seed", 0)), max_rows=EXPLAIN_ROWS, hooks=hooks)
        return found, None


def _release_memory() -> None:
    """One worker runs job after job: drop what Keras keeps of the last one's models (its graph
    names and layers), so memory does not grow with the jobs run."""
    import gc
    import sys

    keras = sys.modules.get("tf_keras")
    if keras is not None:
        keras.backend.clear_session()
    gc.collect()


def metric_rows(metrics: dict) -> list[dict]:
    """Metrics as the ordered (name, value) list the routines return; `auc` is `roc_auc` there."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "roc_auc" in shown:
        shown.pop("auc", None)
    elif "auc" in shown:
        shown["roc_auc"] = shown.pop("auc")
    ordered = [k for k in METRIC_ORDER if k in shown] + sorted(k for k in shown if k not in METRIC_ORDER)
    return [{"name": k, "value": float(shown[k])} for k in ordered]
