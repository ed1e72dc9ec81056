"""Rows from a user's SELECT, streamed out of MySQL in blocks: the trainer's data source.

Every pass runs the query again on a connection of its own with an unbuffered cursor and
reads it with `fetchmany`, so memory holds a few blocks whatever the table size: no export, no
copy of the table. With an integer key and `readers` > 1, a pass splits the key's range into
that many slices, each read by its own connection and thread (`SELECT * FROM (query) AS q
WHERE key >= lo AND key < hi`: the server pushes the range into the query and reads each
slice from the key's index where it has one), and their blocks interleave.

Values arrive as the model's inputs take them, the same conversions the bridge makes when it
scores (client/mlbridge/bridge/rows.py): numbers as float32 (NULL is NaN); strings, ENUMs as
text ("" for NULL); a SET as its members joined by commas; DATE, DATETIME and TIMESTAMP in
ISO-8601 ("" for NULL). So the model is trained on exactly what it is later served.

The query is the user's text and runs with the DSN's privileges; only the wrapping around it
is built here, and every column name in that wrapping goes through `quote_ident`. The source's
connections are READ ONLY, so whatever slips past the SELECT check cannot write.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mysql.connector
import numpy as np

from mlbridge import db
from mlbridge.bridge.rows import text_problem
from mlbridge.config import Dsn
from mlbridge.db import quote_ident
from mlbridge.errors import MlbridgeError

from . import split
from .columns import NUMBER, Columns, SqlColumn, describe_cursor

FETCH_ROWS = 4096
# A streaming read leaves the server waiting on the client whenever training is busy; the
# default net_write_timeout (60 s) would then cut the connection mid-epoch on a slow step.
NET_WRITE_TIMEOUT_S = 3600

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


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (set, frozenset)):
        return ",".join(sorted(v))
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return str(v)


_TEXT = frozenset({str, bytes, bytearray})


def _number(value, name: str | None) -> float:
    """One value of a numeric column as a float (NaN for NULL). Text is taken only when it is a
    complete number, as the bridge takes it (rows.NUMBER_TEXT): numpy and float() would read
    `1_000` as 1000, ` 1 ` as 1 and `nan` as a NULL."""
    if value is None:
        return np.nan
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            shown = value if len(value) <= 40 else value[:37] + "..."
            column = "a numeric column" if name is None else f"the column {name!r}"
            raise MlbridgeError(f"mlbridge: {column} holds the text {shown!r}, which is not a number: {problem}")
    return float(value)


def convert(values, kind: str, name: str | None = None) -> np.ndarray:
    """One column of a block as the model input takes it: float32 for NUMBER, text otherwise.
    `name` is the column's, for the error a value that is no number makes."""
    if kind == NUMBER:
        # Numbers in one numpy call (NULL becomes NaN, DECIMAL a float); text value by value:
        # given a dtype, numpy would parse text itself, leniently.
        array = np.array(values)
        if array.dtype.kind in "fiub":
            return array.astype(np.float32)
        if array.dtype.kind == "O" and not _TEXT.intersection(map(type, values)):
            return np.array(values, dtype=np.float64).astype(np.float32)
        return np.array([_number(v, name) for v in values], dtype=np.float64).astype(np.float32)
    return np.array([_text(v) for v in values], dtype=object)


def convert_label(values, kind: str, name: str | None = None) -> np.ndarray:
    """The label column: float64 numbers (NaN for NULL), or text (None for NULL)."""
    if kind == NUMBER:
        return np.array([_number(v, name) for v in values], dtype=np.float64)
    return np.array([None if v is None else _text(v) for v in values], dtype=object)


@dataclass
class Block:
    """Rows of one fetch: each feature as the model takes it, the label, the split."""

    features: dict[str, np.ndarray]
    label: np.ndarray
    part: np.ndarray  # split.TRAIN / VALIDATION / TEST per row (int8)
    hashes: np.ndarray  # the split hash per row (int64)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, mask: np.ndarray) -> Block:
        return Block({k: v[mask] for k, v in self.features.items()}, self.label[mask], self.part[mask],
                     self.hashes[mask])


def concat(blocks: list[Block]) -> Block:
    if len(blocks) == 1:
        return blocks[0]
    names = list(blocks[0].features)
    return Block(
        {n: np.concatenate([b.features[n] for b in blocks]) for n in names},
        np.concatenate([b.label for b in blocks]),
        np.concatenate([b.part for b in blocks]),
        np.concatenate([b.hashes for b in blocks]),
    )


_DONE = object()


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

    def describe(self) -> list[SqlColumn]:
        """Each column's name, type, flags and character set, in order, without reading a row."""
        with self._cursor() as cur:
            cur.execute(f"SELECT * FROM {wrapped(self.query)} LIMIT 0")
            cur.fetchall()
            return describe_cursor(cur.description)

    def count(self) -> int:
        return int(self._scalar_row(f"SELECT COUNT(*) FROM {wrapped(self.query)}")[0])

    def key_ranges(self, columns: Columns, readers: int) -> list[tuple[int, int]] | None:
        """`readers` half-open slices of an integer key's range, or None (one reader) when the
        key is not an integer or there are too few rows to split."""
        if readers <= 1 or columns.key is None or not columns.sql[columns.key].integer:
            return None
        key = quote_ident(columns.key_name)
        low, high = self._scalar_row(f"SELECT MIN({key}), MAX({key}) FROM {wrapped(self.query)}")
        if low is None or int(high) - int(low) < readers:
            return None
        low, high = int(low), int(high) + 1
        step = -(-(high - low) // readers)
        return [(a, min(a + step, high)) for a in range(low, high, step)]

    def _pass_sql(self, columns: Columns, key_range: tuple[int, int] | None, first: bool) -> str:
        if key_range is None:
            return self.query
        key = quote_ident(columns.key_name)
        # Rows with a NULL key fall in no slice: the first slice takes them.
        null_too = f" OR {key} IS NULL" if first else ""
        return f"SELECT * FROM {wrapped(self.query)} WHERE ({key} >= {int(key_range[0])} AND {key} < {int(key_range[1])}{null_too})"

    def _read(self, columns: Columns, key_range, validation: float, test: float,
              first: bool = True) -> Iterator[Block]:
        names = [columns.names[i] for i in columns.features]
        kinds = columns.kinds
        conn = self._connect()
        try:
            cur = conn.cursor(buffered=False)
            try:
                cur.execute(self._pass_sql(columns, key_range, first))
            except mysql.connector.Error as exc:
                raise self._failed(exc) from exc
            # Positions, not names: run on its own, the query may name a long expression
            # differently than as a derived table (MySQL 8 renames those to Name_exp_N).
            if len(cur.description) != len(columns.names):
                found = ", ".join(d[0] for d in cur.description)
                raise MlbridgeError(
                    f"mlbridge: the query's columns changed while it was being read (now {found}); run it again"
                )
            while True:
                try:
                    rows = cur.fetchmany(self.fetch_rows)
                except mysql.connector.Error as exc:
                    raise self._failed(exc) from exc
                if not rows:
                    break
                cols = list(zip(*rows))
                keys = None if columns.key is None else cols[columns.key]
                hashes = split.row_hashes(keys, rows)
                yield Block(
                    {name: convert(cols[pos], kind, name) for name, pos, kind in zip(names, columns.features, kinds)},
                    np.zeros(len(rows)) if columns.label is None
                    else convert_label(cols[columns.label], columns.label_kind, columns.label_name),
                    split.assign(hashes, validation, test),
                    hashes,
                )
        finally:
            # An abandoned unbuffered read is drained by close(); that is the price of stopping
            # a pass early (an error or an interrupt), never of a normal epoch.
            try:
                conn.close()
            except mysql.connector.Error:
                pass

    def range_blocks(self, columns: Columns, key_range: tuple[int, int], *, first: bool, validation: float = 0.1,
                     test: float = 0.1) -> Iterator[Block]:
        """One pass over one slice of the key's range (`first`: the slice that also takes the
        rows whose key is NULL): what one worker of a distributed training reads."""
        yield from self._read(columns, key_range, validation, test, first)

    def range_count(self, columns: Columns, key_range: tuple[int, int], *, first: bool) -> int:
        return int(self._scalar_row(f"SELECT COUNT(*) FROM ({self._pass_sql(columns, key_range, first)}) AS r")[0])

    def blocks(self, columns: Columns, *, readers: int = 1, validation: float = 0.1, test: float = 0.1,
               ranges: list[tuple[int, int]] | None = None) -> Iterator[Block]:
        """One pass over the query: every row, in blocks, with its split.

        With `ranges` (from key_ranges), each slice is read by a thread and connection of its
        own and the blocks come in the order they arrive; at most 2 blocks per reader wait.
        """
        if ranges is None and readers > 1:
            ranges = self.key_ranges(columns, readers)
        if not ranges or len(ranges) == 1:
            yield from self._read(columns, None, validation, test)
            return
        found: queue.Queue = queue.Queue(maxsize=2 * len(ranges))
        stop = threading.Event()

        def reader(key_range):
            try:
                for block in self._read(columns, key_range, validation, test, key_range == ranges[0]):
                    while not stop.is_set():
                        try:
                            found.put(block, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                found.put(_DONE)
            except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
                found.put(exc)

        threads = [threading.Thread(target=reader, args=(r,), daemon=True, name="mlbridge-reader") for r in ranges]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                item = found.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()
            while True:  # unblock readers waiting on a full queue
                try:
                    found.get_nowait()
                except queue.Empty:
                    break
            for t in threads:
                t.join(timeout=5)
