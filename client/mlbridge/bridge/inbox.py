"""Scoring from triggers: the bridge drains mlbridge.inbox, where application triggers queue
their new rows (migration 0009, docs/sql.md "Scoring from triggers").

A batch of inbox rows is taken in one transaction (FOR UPDATE SKIP LOCKED, so bridges share the
inbox), scored stream by stream with the version each stream's model resolves to now, and its
scores upserted into stream_scores as the rows are deleted, in the same transaction: a row is
scored once or, if the bridge dies, taken again. A row whose features cannot be scored gets its
error in stream_scores instead of a score; nothing is dropped silently. While the model server is
unreachable the batch is given back untouched.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from .. import serving_client as sc
from ..db import fetch_one, query
from . import rows as rowlib
from .catalog import Catalog
from .queue import Chunk
from .scoring import score
from .source import ChunkRows, RequestSpec

log = logging.getLogger("mlbridge.bridge")

BATCH = 500


class StreamError(Exception):
    """A stream's rows cannot be scored as a whole (no such stream, no model): each gets this error."""


def _resolve(conn, stream: str) -> tuple[str, int, list[str]]:
    found = fetch_one(conn, "stream_model", (stream,))
    if found is None:
        raise StreamError(f"mlbridge: there is no stream '{stream}' (mlbridge.stream_create)")
    model = found[0]
    if "@" in model:
        name, label = model.split("@", 1)
        version = fetch_one(conn, "label_version", (name, label))
        if version is None:
            raise StreamError(f"mlbridge: stream '{stream}': model {name} has no version labelled {label}")
        version = version[0]
    elif ":" in model:
        name, number = model.split(":", 1)
        version = int(number)
    else:
        name = model
        version = fetch_one(conn, "newest_version", (name,))[0]
        if version is None:
            raise StreamError(f"mlbridge: stream '{stream}': model {name} has no available version")
    found = fetch_one(conn, "version_inputs", (name, version))
    if found is None or found[0] is None:
        raise StreamError(f"mlbridge: stream '{stream}': model {name} has no version {version}")
    inputs, state = found
    if state not in ("available", "retired"):  # a label may point at a retired version: it still serves
        raise StreamError(f"mlbridge: stream '{stream}': model {name}:{version} is {state}")
    return name, int(version), json.loads(inputs)


def _columns(rows: list[tuple], names: list[str]) -> tuple[ChunkRows, dict[int, str]]:
    """The rows' JSON objects as columns in `names` order; rows that are no such object fail."""
    kept = ChunkRows(columns=[[] for _ in names])
    errors = {}
    for seq, (_id, _stream, _key, features) in enumerate(rows, 1):
        try:
            values = json.loads(features)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            errors[seq] = "mlbridge: the trigger's features are not a JSON object (use JSON_OBJECT('input', NEW.col, ...))"
            continue
        missing = [n for n in names if n not in values]
        if missing:
            errors[seq] = f"mlbridge: the trigger's features lack {', '.join(missing[:5])} (the model takes {', '.join(names)})"
            continue
        kept.seqs.append(seq)
        for column, name in zip(kept.columns, names):
            column.append(values[name])
    return kept, errors


def drain(conn, client: sc.ModelServerClient, catalog: Catalog, limit: int = BATCH) -> int:
    """Score up to `limit` inbox rows; how many were taken (0: the inbox is empty, or the model
    server is unreachable and they were given back)."""
    # An idle bridge looks every half second: a plain read, no transaction, no lock, until rows come.
    if fetch_one(conn, "inbox_any") is None:
        return 0
    conn.start_transaction()
    try:
        cur = conn.cursor()
        cur.execute(query("inbox_take"), (limit,))
        taken = cur.fetchall()
        if not taken:
            conn.commit()
            return 0
        by_stream: dict[str, list[tuple]] = defaultdict(list)
        for row in taken:
            by_stream[row[1]].append(row)
        writes = []
        for stream, rows in by_stream.items():
            writes.extend(_score_stream(conn, client, catalog, stream, rows))
        cur.executemany(query("stream_score"), writes)
        ids = [row[0] for row in taken]
        cur.execute(query("inbox_done").replace("{ids}", ", ".join(["%s"] * len(ids))), ids)
        cur.close()
        conn.commit()
        return len(taken)
    except sc.ServerUnavailable as exc:
        conn.rollback()
        log.warning("bridge: inbox: model server unavailable (%s); the rows wait", exc.details)
        return 0
    except BaseException:
        conn.rollback()
        raise


def _score_stream(conn, client, catalog: Catalog, stream: str, rows: list[tuple]) -> list[tuple]:
    keys = {seq: row[2] for seq, row in enumerate(rows, 1)}
    try:
        name, version, names = _resolve(conn, stream)
        model = catalog.model(conn, name, version, RequestSpec("predict_row", names, None))
    except (StreamError, sc.ServingError) as exc:
        if isinstance(exc, sc.ServerUnavailable):
            raise
        message = str(exc) if isinstance(exc, StreamError) else f"mlbridge: stream '{stream}': {exc.details}"
        return [(stream, keys[seq], None, None, message, None) for seq in keys]
    kept, errors = _columns(rows, names)
    chunk = Chunk(0, 0, 1, len(rows), name, version, 1, 1)
    try:
        found = score(chunk, kept, model, client) if kept.seqs else []
    except sc.ServerUnavailable:
        raise
    except sc.ServingError as exc:  # the server refuses the model itself: every row says so
        return [(stream, keys[seq], None, None, f"mlbridge: model {name}:{version}: {exc.details}", version)
                for seq in keys]
    found.extend(rowlib.Result(seq, error=message) for seq, message in errors.items())
    writes = []
    for result in found:
        output = result.output
        if output is None and result.score is not None and model.score_output:
            output = json.dumps({model.score_output: result.score})
        writes.append((stream, keys[result.seq], result.score, output, result.error, version))
    return writes
