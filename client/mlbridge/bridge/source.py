"""Reading a chunk's rows: typed rows tables over the binary protocol, the JSON rows of requests
queued before typed rows, and predict_row's one JSON object."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

import numpy as np

from ..db import fetch_all, fetch_one, query, quote_ident
from . import rows as rowlib
from .queue import Chunk

_ROWS_TABLE = re.compile(r"rows_[0-9]+")
# Rows converted at a time between chances for the bridge's other threads to run (about 0.5 ms).
BLOCK = 1024
# Column types whose values are plain numbers (no text, no dates): a chunk of these can be read
# as one float matrix. BIT and YEAR are left to the value-by-value path.
NUMERIC_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double"}


@dataclass
class RequestSpec:
    """What the bridge needs to read a request's rows."""

    kind: str
    inputs: list[str]  # input names, in the order the rows carry them (i1..iN)
    rows_table: str | None  # {data}.rows_<id>; None: JSON rows in request_rows
    numeric: bool | None = None  # every input column numeric (read as one float matrix); None: not looked up


@dataclass
class ChunkRows:
    """A chunk's rows that still need a result, as one column of values per input."""

    seqs: list[int] = field(default_factory=list)
    columns: list[Any] = field(default_factory=list)  # lists of values, or float64 arrays (numeric columns)
    failed: list[rowlib.Result] = field(default_factory=list)


def fetch_binary(conn, sql: str, params: tuple[int, ...]) -> list[tuple]:
    """All rows of `sql` over the binary protocol: values arrive as native floats, ints,
    Decimals, dates and strings, with nothing formatted as text on the server or parsed here.

    Straight from the C extension's prepared statement where it is there (its fetch_row runs in
    C, where the connector's prepared cursor runs Python code per row: half the time for 1M rows
    of 9 numbers); the connector's prepared cursor otherwise. `?` placeholders take integers only,
    written into the statement."""
    cmysql = getattr(conn, "_cmysql", None)
    if cmysql is not None and hasattr(cmysql, "stmt_prepare"):
        text = sql
        for value in params:
            text = text.replace("?", str(int(value)), 1)
        stmt = cmysql.stmt_prepare(text.encode())
        try:
            stmt.stmt_execute(query_attrs=[])
            # In blocks: a list() over the whole result would hold the interpreter for the whole
            # chunk, and the bridge's online lane waits for it.
            rows, found = iter(stmt.fetch_row, None), []
            while block := list(islice(rows, BLOCK)):
                found.extend(block)
            return found
        finally:
            stmt.free_result()
            stmt.stmt_close()
    cur = conn.cursor(prepared=True)
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


class Source:
    def __init__(self, conn, data_schema: str):
        self.conn = conn
        self.data_schema = data_schema

    def read(self, chunk: Chunk, spec: RequestSpec, float_inputs: bool = False) -> ChunkRows:
        """The chunk's rows. float_inputs: every model input is a float, so all-number rows may
        come as one float64 matrix (an integer input needs its values exact, not via a double)."""
        if spec.kind == "predict_row":
            return self._online(chunk, spec)
        if spec.rows_table is None:
            return self._json(chunk, spec)
        return self._typed(chunk, spec, float_inputs)

    def seqs(self, chunk: Chunk, spec: RequestSpec) -> list[int]:
        """The rows of the chunk that have no result yet, without their values."""
        if spec.kind == "predict_row":
            return self._online(chunk, spec).seqs
        if spec.rows_table is None:
            found = self._json(chunk, spec)
            return sorted(found.seqs + [r.seq for r in found.failed])
        return self._typed(chunk, RequestSpec(spec.kind, [], spec.rows_table)).seqs

    def _typed(self, chunk: Chunk, spec: RequestSpec, float_inputs: bool = False) -> ChunkRows:
        if not _ROWS_TABLE.fullmatch(spec.rows_table or ""):
            raise ValueError(f"rows table {spec.rows_table!r} is not one of mlbridge's")
        columns = "".join(f", i{i + 1}" for i in range(len(spec.inputs)))
        sql = (query("chunk_rows_typed").replace("{columns}", columns)
               .replace("{table}", f"{quote_ident(self.data_schema)}.{quote_ident(spec.rows_table)}"))
        found = fetch_binary(self.conn, sql, (int(chunk.seq_from), int(chunk.seq_to)))
        done = self._with_results(chunk)
        if done:
            found = [row for row in found if row[0] not in done]
        if not found:
            return ChunkRows()
        if float_inputs and spec.numeric is None:
            spec.numeric = self._numeric(spec)
        if float_inputs and spec.numeric:
            # Numbers only, as in the tables users score most: one float matrix in a single pass,
            # the way a hand-written program reads them. A NULL reads as NaN, which MySQL's
            # numeric columns cannot hold: rows.convert_column takes NaN for NULL.
            width = len(spec.inputs) + 1
            try:
                matrix = np.concatenate([
                    np.fromiter(chain.from_iterable(found[i:i + BLOCK]), np.float64,
                                len(found[i:i + BLOCK]) * width)
                    for i in range(0, len(found), BLOCK)])
            except (TypeError, ValueError, OverflowError):
                matrix = None
            if matrix is not None:
                matrix = matrix.reshape(len(found), width)
                return ChunkRows([row[0] for row in found], [matrix[:, i] for i in range(1, width)])
        values = list(zip(*found))
        return ChunkRows(list(values[0]), [list(v) for v in values[1:]])

    def _numeric(self, spec: RequestSpec) -> bool:
        types = [row[0].lower() for row in fetch_all(self.conn, "rows_column_types", (self.data_schema, spec.rows_table))]
        return len(types) == len(spec.inputs) and all(t in NUMERIC_TYPES for t in types)

    def _with_results(self, chunk: Chunk) -> set[int]:
        return {row[0] for row in fetch_all(self.conn, "chunk_results", (chunk.request_id, chunk.seq_from, chunk.seq_to))}

    def _json(self, chunk: Chunk, spec: RequestSpec) -> ChunkRows:
        found = fetch_all(self.conn, "chunk_rows", (chunk.request_id, chunk.seq_from, chunk.seq_to))
        seqs, columns, failed = rowlib.json_columns([r[0] for r in found], [r[2] for r in found], spec.inputs)
        return ChunkRows(seqs, columns, failed)

    def online_request(self, chunk: Chunk) -> tuple[RequestSpec, ChunkRows]:
        """A predict_row request and its one row, in one query (the online lane's read)."""
        found = fetch_one(self.conn, "online_request", (chunk.request_id,))
        if not found:
            raise LookupError(f"request {chunk.request_id} is gone")
        kind, inputs, rows_table, features = found
        spec = RequestSpec(kind, json.loads(inputs) if inputs else [], rows_table)
        if kind != "predict_row" or features is None:
            return spec, self.read(chunk, spec)
        return spec, ChunkRows([1], rowlib.object_columns(features, spec.inputs))

    def _online(self, chunk: Chunk, spec: RequestSpec) -> ChunkRows:
        found = fetch_one(self.conn, "online_row", (chunk.request_id,))
        if not found:
            return ChunkRows()
        return ChunkRows([1], rowlib.object_columns(found[0], spec.inputs))
