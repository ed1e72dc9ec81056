"""The bridge's decisions about one chunk, apart from any database: score its rows, or say why
not and what to do about it. Pure logic over a model server client, unit-tested with fakes.

- The model server is down, restarting or overloaded: give the chunk back (`Release`) without
  using up an attempt.
- The server refuses a batch as a whole (bad input for the model): split the batch in halves
  until the rows at fault are found, so one bad row fails alone and the rest are scored.
- The model is unknown, or anything else goes wrong with this chunk: `Retry` it after a backoff
  (the attempt counts), and `Fail` its rows with the error once its attempts are used up.
- Never does one chunk's trouble reach another chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .. import serving_client as sc
from . import rows as rowlib
from .catalog import RequestMismatch
from .queue import Chunk, backoff
from .source import ChunkRows

log = logging.getLogger("mlbridge.bridge")


@dataclass
class Work:
    """A claimed chunk on its way through the bridge: its rows and model, or why they could not
    be had."""

    chunk: Chunk
    rows: ChunkRows | None = None
    model: object | None = None  # catalog.ModelSpec
    error: BaseException | None = None


@dataclass
class Done:
    results: list[rowlib.Result] = field(default_factory=list)


@dataclass
class Release:
    delay: float
    reason: str


@dataclass
class Retry:
    message: str
    delay: float


@dataclass
class Fail:
    message: str


Outcome = Done | Release | Retry | Fail


def failed_attempt(chunk: Chunk, message: str) -> Retry | Fail:
    """A counted attempt failed: try again later, or fail the rows once attempts are used up."""
    if chunk.attempts < chunk.max_attempts:
        return Retry(message, backoff(chunk.attempts, base=1.0, cap=30.0))
    return Fail(message)


def decide(work: Work, client: sc.ModelServerClient, on_predict=None) -> Outcome:
    """What becomes of a claimed chunk."""
    chunk = work.chunk
    if work.error is not None:
        return _on_error(chunk, work.error)
    assert work.rows is not None and work.model is not None
    try:
        return Done(score(chunk, work.rows, work.model, client, on_predict))
    except Exception as exc:  # noqa: BLE001 - whatever happens to this chunk stays with it
        return _on_error(chunk, exc)


def _on_error(chunk: Chunk, exc: BaseException) -> Outcome:
    if isinstance(exc, RequestMismatch):  # the same on every attempt
        return Fail(str(exc))
    if isinstance(exc, sc.ServerUnavailable):
        return Release(backoff(chunk.attempts, base=0.5, cap=10.0), f"model server unavailable: {exc.details}")
    if isinstance(exc, sc.ServingError):
        return failed_attempt(chunk, f"mlbridge: model {chunk.model}: {exc.details}")
    if isinstance(exc, ValueError) and str(exc).startswith("mlbridge: "):
        return failed_attempt(chunk, str(exc))
    log.exception("bridge: chunk %d of request %d: unexpected error", chunk.id, chunk.request_id, exc_info=exc)
    return failed_attempt(chunk, f"mlbridge: the bridge failed on this chunk: {type(exc).__name__}: {exc}")


def score(chunk: Chunk, rows: ChunkRows, model, client: sc.ModelServerClient, on_predict=None) -> list[rowlib.Result]:
    """A Result for every row of the chunk that had none."""
    found = list(rows.failed)
    if rows.seqs:
        batch = rowlib.build_batch(rows.seqs, rows.columns, model.inputs)
        found.extend(batch.failed)
        if batch.seqs:
            found.extend(_predict(chunk, batch, model, client, on_predict))
    found.sort(key=lambda r: r.seq)
    return found


def _predict(chunk: Chunk, batch: rowlib.Batch, model, client: sc.ModelServerClient,
             on_predict) -> list[rowlib.Result]:
    """Score a batch; when the server refuses it, split it to find the rows at fault."""
    started = time.monotonic()
    try:
        outputs = client.predict(chunk.model_name, chunk.model_version, batch.inputs)
        if on_predict is not None:
            on_predict(time.monotonic() - started)
    except (sc.InvalidRequest, sc.MessageTooLarge) as exc:
        if len(batch.seqs) == 1:
            return [rowlib.Result(batch.seqs[0], error=f"mlbridge: the model refused this row: {exc.details}")]
        half = len(batch.seqs) // 2
        return (_predict(chunk, batch.take(slice(None, half)), model, client, on_predict)
                + _predict(chunk, batch.take(slice(half, None)), model, client, on_predict))
    try:
        return rowlib.results(batch.seqs, outputs, model.score_output, model.keep_output)
    except ValueError as exc:
        return [rowlib.Result(seq, error=f"mlbridge: {exc}") for seq in batch.seqs]
