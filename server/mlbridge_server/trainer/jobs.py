"""The life cycle of a job of train_model, score_model or explain_model in table `jobs`: claim,
renew, report progress, close as done or failed, give back, sweep expired leases. Each call is
one short transaction on the worker's connection (the SQL is in sql/queries.sql), as the
bridge's chunks are (client/mlbridge/bridge/queue.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from mlbridge.db import fetch_all, fetch_one, query, retry_transaction


@dataclass
class Job:
    request_id: int
    kind: str  # train | score | explain
    label: str
    query: str  # the caller's query as given (a trained version's trained_on)
    attempts: int
    max_attempts: int
    owner: str = ""
    model_name: str = ""
    model_version: int | None = None
    key: str | None = None
    options: dict | None = None
    rows_table: str | None = None
    rows_total: int = 0


def _json(value) -> str | None:
    """JSON for MySQL, which has no NaN or infinity: those become null (an importance or AUC that
    could not be measured)."""
    return None if value is None else json.dumps(_finite(value), allow_nan=False, default=float)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _finite(value.item())
    return value


class JobQueue:
    def __init__(self, conn, worker: str, lease_seconds: int = 60):
        self.conn = conn
        self.worker = worker
        self.lease_seconds = lease_seconds

    def claim(self) -> Job | None:
        """The oldest claimable job, now running under this worker's lease; None when none waits."""

        def work(cur):
            cur.execute(query("job_claim_select"))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(query("job_claim_update"), (self.worker, self.lease_seconds, row[0]))
            return Job(*row[:4], attempts=row[4] + 1, max_attempts=row[5])

        job = retry_transaction(self.conn, work)
        if job is not None:
            owner, name, version, key, options, rows_table, total = fetch_one(self.conn, "job_request", (job.request_id,))
            job.owner, job.model_name, job.model_version, job.key = owner, name, version, key
            job.options = json.loads(options) if options else {}
            job.rows_table, job.rows_total = rows_table, int(total)
            self._execute("job_started", (_json({"phase": "starting", "attempt": job.attempts}), job.request_id))
        return job

    def renew(self, job: Job) -> bool:
        """Extend the lease; False when the claim is gone (the job was cancelled or taken over)."""
        return self._execute("job_renew", (self.lease_seconds, job.request_id, self.worker)) == 1

    def progress(self, job: Job, progress: dict) -> None:
        self._execute("job_progress", (_json(progress), job.request_id))

    def done(self, job: Job, result: dict, version: int | None = None, progress: dict | None = None) -> bool:
        """Close the job with its result; False (and nothing written) when the claim is gone."""

        def work(cur):
            cur.execute(query("job_close"), ("done", None, None, job.request_id, self.worker))
            if cur.rowcount != 1:
                return False
            cur.execute(query("job_done"), (_json(result), version, _json(progress), job.request_id))
            return True

        return retry_transaction(self.conn, work)

    def failed(self, job: Job, error: str, progress: dict | None = None) -> bool:
        def work(cur):
            cur.execute(query("job_close"), ("failed", error, error, job.request_id, self.worker))
            if cur.rowcount != 1:
                return False
            cur.execute(query("job_failed"), (error[:60000], _json(progress), job.request_id))
            return True

        return retry_transaction(self.conn, work)

    def retry(self, job: Job, error: str, delay: float) -> bool:
        """Give the job back for another attempt after `delay` seconds."""
        return self._execute("job_retry", (delay, error[:2000], job.request_id, self.worker)) == 1

    def sweep(self) -> list[int]:
        """Requeue jobs whose worker's lease ran out; fail those with no attempt left. Returns the
        request ids failed."""

        def work(cur):
            cur.execute(query("job_expired"))
            failed = []
            for request_id, attempts, max_attempts, worker in cur.fetchall():
                note = f"mlbridge: trainer worker {worker} stopped while it held this job (attempt {attempts})"
                if attempts >= max_attempts:
                    cur.execute(query("job_give_up"), (request_id,))
                    cur.execute(query("job_failed"), (
                        f"mlbridge: {attempts} trainer workers stopped while they held this job; "
                        "see the trainer's log (a job that runs out of memory kills its worker)",
                        None, request_id))
                    failed.append(request_id)
                else:
                    cur.execute(query("job_requeue"), (note, request_id))
            return failed

        return retry_transaction(self.conn, work)

    def columns(self, schema: str, table: str) -> list[str]:
        return [row[0] for row in fetch_all(self.conn, "job_columns", (schema, table))]

    def _execute(self, name: str, params: tuple) -> int:
        cur = self.conn.cursor()
        try:
            cur.execute(query(name), params)
            return cur.rowcount
        finally:
            cur.close()
