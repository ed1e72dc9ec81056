"""The bridge's side of predict_queue: claim, read, close, give back, sweep. Each call is one
short transaction; no lock is held while a chunk is being scored."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import mysql.connector
from mysql.connector import errorcode

from ..db import query, retry_transaction


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

    def claim(self, limit: int) -> list[Chunk]:
        def work(cur):
            cur.execute(query("claim_select"), (limit,))
            found = cur.fetchall()
            if not found:
                return []
            ids = [row[0] for row in found]
            cur.execute(_with_ids(query("claim_update"), ids), (self.owner, self.lease_seconds, *ids))
            request_ids = sorted({row[1] for row in found})
            cur.execute(_with_ids(query("claim_requests"), request_ids), request_ids)
            return [Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6] + 1, r[7]) for r in found]

        return retry_transaction(self.conn, work)

    def rows(self, chunk: Chunk) -> list[tuple]:
        cur = self.conn.cursor()
        try:
            cur.execute(query("chunk_rows"), (chunk.request_id, chunk.seq_from, chunk.seq_to))
            return cur.fetchall()
        finally:
            cur.close()

    def fetch_one(self, name: str, params: tuple):
        cur = self.conn.cursor()
        try:
            cur.execute(query(name), params)
            return cur.fetchone()
        finally:
            cur.close()

    def close(self, chunk: Chunk, results: Sequence[tuple], *, state: str = "done",
              error: str | None = None) -> bool:
        """Write a chunk's results and close it, in one transaction, only while our claim holds.
        results: (seq, key, score, output_json, error). False when the claim was lost."""

        def work(cur):
            cur.execute(query("close_chunk"), (state, chunk.id, self.owner))
            if cur.rowcount == 0:
                return False
            if results:
                cur.execute(query("insert_results").replace("{values}", results_values(chunk.request_id, results)))
            failed = sum(1 for r in results if r[4] is not None)
            cur.execute(query("request_progress"), {
                "done": len(results) - failed, "failed": failed, "error": error, "request": chunk.request_id,
            })
            return True

        try:
            return retry_transaction(self.conn, work)
        except mysql.connector.IntegrityError as exc:
            if exc.errno != errorcode.ER_DUP_ENTRY:
                raise
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


# MySQL string literal escapes (the bridge's sessions keep backslash escapes on: see
# mlbridge.bridge.worker). Building the VALUES list here costs a fraction of executemany's
# per-row parameter substitution, which was a third of the bridge's time.
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\x00": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})


def sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.translate(_ESCAPES) + "'"


def results_values(request_id: int, results: Sequence[tuple]) -> str:
    """`(request_id, seq, key, score, output, error), ...` for results (seq, key, score, output, error)."""
    rid = int(request_id)
    return ",".join(
        f"({rid},{int(seq)},{sql_text(key)},{'NULL' if score is None else repr(float(score))},"
        f"{sql_text(output)},{sql_text(error)})"
        for seq, key, score, output, error in results
    )


def backoff(attempt: int, base: float = 0.2, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))


def _micros(seconds: float) -> int:
    return max(0, int(seconds * 1e6))

