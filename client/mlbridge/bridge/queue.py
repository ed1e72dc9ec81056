"""The life cycle of a chunk of predict_queue: claim, close, give back, retry, sweep. Each call is
one short transaction; no lock is held while a chunk is being scored."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..db import query, retry_transaction
from .rows import Result
from .sink import DuplicateResult, ResultWriter


@dataclass
class Chunk:
    id: int
    request_id: int
    seq_from: int
    seq_to: int
    model_name: str
    model_version: int
    attempts: int  # including the current one
    max_attempts: int

    @property
    def model(self) -> str:
        return f"{self.model_name}:{self.model_version}"


def _with_ids(sql: str, ids: Sequence[int]) -> str:
    return sql.replace("{ids}", ", ".join(["%s"] * len(ids)))


class Queue:
    def __init__(self, conn, owner: str, lease_seconds: int = 60):
        self.conn = conn
        self.owner = owner
        self.lease_seconds = lease_seconds

    def claim(self, limit: int, priorities: tuple[int, int] = (0, 32767), mark_running: bool = True) -> list[Chunk]:
        """Up to `limit` pending chunks with a priority in the range, now ours. mark_running=False
        leaves their requests `pending` until their first chunk closes (one statement less, for
        one-row requests that are done within milliseconds)."""

        def work(cur):
            cur.execute(query("claim_select"), (*priorities, limit))
            found = cur.fetchall()
            if not found:
                return []
            ids = [row[0] for row in found]
            cur.execute(_with_ids(query("claim_update"), ids), (self.owner, self.lease_seconds, *ids))
            if mark_running:
                request_ids = sorted({row[1] for row in found})
                cur.execute(_with_ids(query("claim_requests"), request_ids), request_ids)
            return [Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6] + 1, r[7]) for r in found]

        return retry_transaction(self.conn, work)

    def close(self, chunk: Chunk, results: Sequence[Result], writer: ResultWriter, *, state: str = "done",
              error: str | None = None) -> bool:
        """Write a chunk's results and close it, in one transaction, only while our claim holds.
        False when the claim was lost (nothing is written)."""

        def work(cur):
            cur.execute(query("close_chunk"), (state, chunk.id, self.owner))
            if cur.rowcount == 0:
                return False
            writer.write(cur, chunk.request_id, results)
            failed = sum(1 for r in results if r.error is not None)
            cur.execute(query("request_progress"), {
                "done": len(results) - failed, "failed": failed, "error": error, "request": chunk.request_id,
            })
            return True

        try:
            return retry_transaction(self.conn, work)
        except DuplicateResult:
            # Another bridge wrote these rows' results already (the transaction was rolled
            # back): ours are not written twice.
            return False

    def release(self, chunk: Chunk, delay: float) -> None:
        """Give a chunk back without using up its attempt (the model server was unreachable)."""
        retry_transaction(self.conn, lambda cur: cur.execute(
            query("release_chunk"), (_micros(delay), chunk.id, self.owner)))

    def retry(self, chunk: Chunk, error: str, delay: float) -> None:
        retry_transaction(self.conn, lambda cur: cur.execute(
            query("retry_chunk"), (error, _micros(delay), chunk.id, self.owner)))

    def record_error(self, chunk: Chunk, error: str) -> None:
        retry_transaction(self.conn, lambda cur: cur.execute(query("record_chunk_error"), (error, chunk.id)))

    def sweep(self) -> list[Chunk]:
        """Requeue chunks whose lease expired; return those with no attempt left, now claimed by
        us, for the caller to fail."""

        def work(cur):
            cur.execute(query("expired_chunks"))
            exhausted = []
            for r in cur.fetchall():
                chunk = Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
                note = f"mlbridge: lease of bridge {r[8]} expired while it held this chunk"
                if chunk.attempts >= chunk.max_attempts:
                    cur.execute(query("take_expired"), (self.owner, chunk.id))
                    exhausted.append((chunk, note))
                else:
                    cur.execute(query("requeue_expired"), (note, chunk.id))
            return exhausted

        return retry_transaction(self.conn, work)


def backoff(attempt: int, base: float = 0.2, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))


def _micros(seconds: float) -> int:
    return max(0, int(seconds * 1e6))

