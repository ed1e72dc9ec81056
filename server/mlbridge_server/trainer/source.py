"""Rows from a user's SELECT, streamed out of MySQL in blocks: the trainer's data source.

Every pass runs the query again on a connection of its own with an unbuffered cursor and
reads it with `fetchmany`, so memory holds one block and one shuffle window whatever the table
size: no export, no copy of the table. Statistics (feature mean and variance, the label's
range) come from one aggregate the server computes over the query wrapped as a derived table.

The query is the user's text and runs with the DSN's privileges; only the wrapping around it
is built here, and every column name in that wrapping goes through `quote_ident`. The source's
connections are READ ONLY, so whatever slips past the SELECT check cannot write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mysql.connector
import numpy as np

from mlbridge import db
from mlbridge.config import Dsn
from mlbridge.db import quote_ident
from mlbridge.errors import MlbridgeError

from .columns import Columns
from .split import holdout_mask

FETCH_ROWS = 4096
# Rows shuffled together before they are cut into batches. Streamed rows arrive in the query's
# order (often the primary key's), so without a window a batch would hold neighbours only.
SHUFFLE_ROWS = 1 << 16
# A streaming read leaves the server waiting on the client whenever training is busy; the
# default net_write_timeout (60 s) would then cut the connection mid-epoch on a slow step.
NET_WRITE_TIMEOUT_S = 3600

TRAIN, HOLDOUT, ALL = "train", "holdout", "all"

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|#[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_FIRST_WORD = re.compile(r"\(|[A-Za-z]+")
_QUERY_STARTS = {"(", "SELECT", "WITH", "VALUES", "TABLE"}


def normalise_query(query: str) -> str:
    """The query without surrounding blanks and trailing semicolons, checked to be a SELECT."""
    if not isinstance(query, str) or not query.strip():
        raise MlbridgeError("mlbridge: the query is empty: pass a SELECT that returns the training rows")
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    body = text[_LEADING_COMMENTS.match(text).end():]
    first = _FIRST_WORD.match(body)
    if not first or first.group(0).upper() not in _QUERY_STARTS:
        shown = body[:40] + ("..." if len(body) > 40 else "")
        raise MlbridgeError(f"mlbridge: the query must be a SELECT, not {shown!r}")
    return text


def wrapped(query: str) -> str:
    """The query as a derived table. The newlines keep a trailing `-- comment` in the query
    from swallowing the closing parenthesis."""
    return f"(\n{query}\n) AS q"


@dataclass
class Statistics:
    rows: int  # rows with no NULL feature or label
    mean: np.ndarray
    variance: np.ndarray
    label_mean: float
    label_variance: float
    label_min: float
    label_max: float
    label_not_binary: int  # rows whose label is neither 0 nor 1


@dataclass
class PassCounts:
    """What one pass over the query saw."""

    rows: int = 0
    skipped: int = 0  # a NULL feature or label
    train: int = 0
    holdout: int = 0


@dataclass
class Block:
    x: np.ndarray  # float32 [n, features]
    y: np.ndarray  # float64 [n]
    holdout: np.ndarray  # bool [n]


def statistics_sql(query: str, features: list[str], label: str) -> str:
    parts = ["COUNT(*)"]
    for name in features:
        col = quote_ident(name)
        parts += [f"AVG({col})", f"VAR_POP({col})"]
    lab = quote_ident(label)
    parts += [f"AVG({lab})", f"VAR_POP({lab})", f"MIN({lab})", f"MAX({lab})", f"COALESCE(SUM({lab} NOT IN (0, 1)), 0)"]
    where = " AND ".join(f"{quote_ident(name)} IS NOT NULL" for name in [*features, label])
    return f"SELECT {', '.join(parts)} FROM {wrapped(query)} WHERE {where}"


class QuerySource:
    """One user query, described, summarised and streamed."""

    def __init__(self, dsn: Dsn, query: str, *, fetch_rows: int = FETCH_ROWS) -> None:
        self.dsn = dsn
        self.query = normalise_query(query)
        self.fetch_rows = fetch_rows

    def _connect(self):
        conn = db.connect(self.dsn)
        cur = conn.cursor()
        try:
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("SET SESSION net_write_timeout = %s", (NET_WRITE_TIMEOUT_S,))
        finally:
            cur.close()
        return conn

    def _failed(self, exc: mysql.connector.Error) -> MlbridgeError:
        if exc.errno == 1064:  # ER_PARSE_ERROR: not a query that can stand as a derived table
            return MlbridgeError(f"mlbridge: the query must be a single SELECT; MySQL says: {exc.msg}")
        return MlbridgeError(f"mlbridge: the query failed: {exc.msg}")

    @contextmanager
    def _cursor(self):
        """A cursor on a connection of its own; MySQL's errors become mlbridge's."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            try:
                yield cur
            except mysql.connector.Error as exc:
                raise self._failed(exc) from exc
            finally:
                cur.close()
        finally:
            conn.close()

    def _scalar_row(self, sql: str) -> tuple:
        with self._cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()

    def describe(self) -> list[tuple[str, int]]:
        """(name, type code) of each column, in order, without reading any row."""
        with self._cursor() as cur:
            cur.execute(f"SELECT * FROM {wrapped(self.query)} LIMIT 0")
            cur.fetchall()
            return [(d[0], d[1]) for d in cur.description]

    def count(self) -> int:
        return int(self._scalar_row(f"SELECT COUNT(*) FROM {wrapped(self.query)}")[0])

    def statistics(self, columns: Columns) -> Statistics:
        features = columns.feature_names
        row = self._scalar_row(statistics_sql(self.query, features, columns.label_name))
        rows = int(row[0])
        if rows == 0:
            nan = np.full(len(features), np.nan)
            return Statistics(0, nan, nan, np.nan, np.nan, np.nan, np.nan, 0)
        values = [np.nan if v is None else float(v) for v in row[1:]]
        k = 2 * len(features)
        lm, lv, lmin, lmax, not_binary = values[k:]
        return Statistics(
            rows=rows,
            mean=np.array(values[0:k:2], dtype=np.float64),
            variance=np.array(values[1:k:2], dtype=np.float64),
            label_mean=lm,
            label_variance=lv,
            label_min=lmin,
            label_max=lmax,
            label_not_binary=int(not_binary),
        )

    def blocks(self, columns: Columns, counts: PassCounts) -> Iterator[Block]:
        """One pass over the query: blocks of usable rows with their hold-out flags.

        Rows with a NULL feature or label are dropped and counted in `counts.skipped`.
        """
        features = list(columns.features)
        conn = self._connect()
        try:
            cur = conn.cursor(buffered=False)
            try:
                cur.execute(self.query)
            except mysql.connector.Error as exc:
                raise self._failed(exc) from exc
            # Positions, not names: run on its own, the query may name a long expression
            # differently than as a derived table (MySQL 8 renames those to Name_exp_N).
            if len(cur.description) != len(columns.names):
                names = ", ".join(d[0] for d in cur.description)
                raise MlbridgeError(
                    f"mlbridge: the query's columns changed while it was being read (now {names}); "
                    "run it again"
                )
            ordinal = 0
            while True:
                try:
                    rows = cur.fetchmany(self.fetch_rows)
                except mysql.connector.Error as exc:
                    raise self._failed(exc) from exc
                if not rows:
                    break
                n = len(rows)
                cols = list(zip(*rows))
                x = np.empty((n, len(features)), dtype=np.float32)
                for j, pos in enumerate(features):
                    x[:, j] = np.array(cols[pos], dtype=np.float64)
                y = np.array(cols[columns.label], dtype=np.float64)
                keys = None if columns.key is None else cols[columns.key]
                held = holdout_mask(keys, np.arange(ordinal, ordinal + n))
                ordinal += n
                usable = ~(np.isnan(x).any(axis=1) | np.isnan(y))
                kept = int(np.count_nonzero(usable))
                counts.rows += n
                counts.skipped += n - kept
                if kept < n:
                    x, y, held = x[usable], y[usable], held[usable]
                h = int(np.count_nonzero(held))
                counts.holdout += h
                counts.train += kept - h
                if kept:
                    yield Block(x, y, held)
        finally:
            # An abandoned unbuffered read is drained by close(); that is the price of stopping
            # a pass early (an error or an interrupt), never of a normal epoch.
            try:
                conn.close()
            except mysql.connector.Error:
                pass


def batches(
    source: QuerySource,
    columns: Columns,
    subset: str,
    batch_size: int,
    counts: PassCounts,
    *,
    shuffle_rows: int = 0,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x float32 [n, features], y float64 [n]) batches of one subset of one pass.

    With `rng`, rows are shuffled within windows of `shuffle_rows` before being cut into
    batches; the last batch of a pass may be short.
    """
    window = max(shuffle_rows, batch_size) if rng is not None else batch_size
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    buffered = 0

    def cut(final: bool):
        nonlocal xs, ys, buffered
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        y = np.concatenate(ys) if len(ys) > 1 else ys[0]
        if rng is not None:
            order = rng.permutation(len(y))
            x, y = x[order], y[order]
        end = len(y) if final else len(y) // batch_size * batch_size
        for start in range(0, end, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        xs, ys, buffered = [x[end:]], [y[end:]], len(y) - end

    for block in source.blocks(columns, counts):
        if subset == ALL:
            x, y = block.x, block.y
        else:
            keep = block.holdout if subset == HOLDOUT else ~block.holdout
            x, y = block.x[keep], block.y[keep]
        if not len(y):
            continue
        xs.append(x)
        ys.append(y)
        buffered += len(y)
        if buffered >= window:
            yield from cut(final=False)
    if buffered:
        yield from cut(final=True)


def dataset(make_batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], n_features: int):
    """A tf.data.Dataset over a batch generator; each iteration (each epoch) calls it afresh,
    so each epoch runs the query again. Yields (x float32 [n, F], y float32 [n, 1])."""
    import tensorflow as tf

    def generate():
        for x, y in make_batches():
            yield x, y.astype(np.float32).reshape(-1, 1)

    spec = (
        tf.TensorSpec(shape=(None, n_features), dtype=tf.float32),
        tf.TensorSpec(shape=(None, 1), dtype=tf.float32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=spec).prefetch(2)
