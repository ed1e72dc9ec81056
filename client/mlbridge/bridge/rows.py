"""Turn a chunk's rows into model inputs, and model outputs into result rows. Pure logic.

A row that cannot be fed to the model fails alone, with a message naming the column and the
problem; the rest of its batch is still scored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "bfloat16": np.float32}
INT_DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
              "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}


@dataclass
class Row:
    seq: int
    key: str | None
    features: str  # the JSON array from request_rows


@dataclass
class Failed:
    seq: int
    key: str | None
    error: str


@dataclass
class Batch:
    """The rows that passed conversion, and the arrays to send, one per model input."""

    rows: list[Row] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    failed: list[Failed] = field(default_factory=list)


def convert_value(value: Any, column: str, dtype: str) -> Any:
    """One JSON value to what `dtype` holds; ValueError with a message naming the column."""
    if value is None:
        raise ValueError(f"column {column}: NULL, but the model needs a value ({dtype})")
    if dtype in FLOAT_DTYPES or dtype in INT_DTYPES:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(f"column {column}: {_show(value)} is not a number ({dtype})") from None
        if not isinstance(value, (int, float)):
            raise ValueError(f"column {column}: {_show(value)} is not a number ({dtype})")
        if dtype in FLOAT_DTYPES:
            if not math.isfinite(value):
                raise ValueError(f"column {column}: {value!r} is not a finite number")
            info = np.finfo(FLOAT_DTYPES[dtype])
            if abs(value) > float(info.max):
                raise ValueError(f"column {column}: {value!r} is out of range for {dtype}")
            return value
        if float(value) != int(value):
            raise ValueError(f"column {column}: {value!r} is not a whole number ({dtype})")
        info = np.iinfo(INT_DTYPES[dtype])
        if not info.min <= int(value) <= info.max:
            raise ValueError(f"column {column}: {value!r} is out of range for {dtype}")
        return int(value)
    if dtype == "string":
        if isinstance(value, str):
            return value.encode()
        return json.dumps(value).encode()
    if dtype == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError(f"column {column}: {_show(value)} is not true/false or 0/1")
    raise ValueError(f"column {column}: the model's input type {dtype} is not supported by the bridge yet")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def build_batch(rows: Sequence[Row], names: Sequence[str], dtypes: dict[str, str]) -> Batch:
    """Convert rows whose `features` carry `names` in order into one array per model input."""
    fast = _build_numeric(rows, names, dtypes)
    if fast is not None:
        return fast
    batch = Batch()
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        try:
            values = json.loads(row.features)
            if not isinstance(values, list) or len(values) != len(names):
                raise ValueError(f"row carries {len(values) if isinstance(values, list) else 0} values "
                                 f"for {len(names)} inputs")
            converted = [convert_value(v, name, dtypes[name]) for v, name in zip(values, names)]
        except ValueError as exc:
            batch.failed.append(Failed(row.seq, row.key, f"mlbridge: {exc}"))
            continue
        batch.rows.append(row)
        for column, value in zip(columns, converted):
            column.append(value)
    for name, column in zip(names, columns):
        dtype = dtypes[name]
        np_dtype = FLOAT_DTYPES.get(dtype) or INT_DTYPES.get(dtype) or (np.bool_ if dtype == "bool" else object)
        batch.inputs[name] = np.asarray(column, dtype=np_dtype)
    return batch


def _build_numeric(rows: Sequence[Row], names: Sequence[str], dtypes: dict[str, str]) -> Batch | None:
    """The common case in one pass: every input a float and every value a finite number. One JSON
    parse for the whole chunk and one array conversion; None sends the chunk down the row-by-row
    path, which finds and names the bad values."""
    if not rows or any(dtypes[name] not in ("float32", "float64") for name in names):
        return None
    try:
        matrix = np.array(json.loads("[" + ",".join(row.features for row in rows) + "]"), dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if matrix.shape != (len(rows), len(names)) or not np.isfinite(matrix).all():
        return None
    inputs = {}
    for i, name in enumerate(names):
        column = matrix[:, i]
        if dtypes[name] == "float32":
            if np.abs(column).max() > float(np.finfo(np.float32).max):
                return None
            column = column.astype(np.float32)
        inputs[name] = np.ascontiguousarray(column)
    return Batch(rows=list(rows), inputs=inputs)


def pick_score_output(outputs: Sequence[str], configured: str | None) -> str | None:
    """The output that is the score: the catalog's choice, else `score`, else the only output."""
    if configured and configured in outputs:
        return configured
    if "score" in outputs:
        return "score"
    if len(outputs) == 1:
        return outputs[0]
    return None


def _jsonable(value: Any) -> Any:
    """A model output value as JSON can hold it; NaN and infinities become null (the results'
    JSON column, and JSON itself, have no place for them)."""
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_shapes(n: int, outputs: dict[str, np.ndarray]) -> None:
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != n:
            raise ValueError(f"model output {name} has shape {list(array.shape)}, not one entry per row ({n})")


def _fast_result_rows(rows: Sequence[Row], outputs: dict[str, np.ndarray], score_output: str | None):
    """The common case at the speed of a list comprehension: one value per row in every output,
    all finite numbers. None sends the batch down the general path."""
    if score_output is None or not outputs:
        return None
    columns = []
    for array in outputs.values():
        if array.ndim != 1 or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            return None
        if np.issubdtype(array.dtype, np.floating):
            if not np.isfinite(array).all():
                return None
            columns.append(array.astype(np.float64).tolist())
        else:
            columns.append(array.tolist())
    # float repr is the shortest text that reads back to the same double, as json.dumps writes it
    template = "{" + ",".join(json.dumps(name).replace("%", "%%") + ":%r" for name in outputs) + "}"
    scores = columns[list(outputs).index(score_output)]
    return [(row.seq, row.key, float(score), template % values, None)
            for row, score, values in zip(rows, scores, zip(*columns))]


def result_rows(rows: Sequence[Row], outputs: dict[str, np.ndarray], score_output: str | None) -> list[tuple]:
    """(seq, key, score, output_json, error) for each row from the model's batch outputs."""
    _check_shapes(len(rows), outputs)
    fast = _fast_result_rows(rows, outputs, score_output)
    if fast is not None:
        return fast
    results = []
    for i, row in enumerate(rows):
        output = {name: _jsonable(array[i]) for name, array in outputs.items()}
        score, error = None, None
        if score_output is None:
            error = f"mlbridge: the model has outputs {sorted(outputs)} and none is named score; set models.score_output"
        else:
            value = np.asarray(outputs[score_output][i]).reshape(-1)
            if value.size != 1:
                error = f"mlbridge: model output {score_output} holds {value.size} values per row, not one score"
            else:
                score = float(value[0])
                if not math.isfinite(score):
                    score, error = None, f"mlbridge: the model gave a non-finite score ({value[0]!r})"
        results.append((row.seq, row.key, score, json.dumps(output, separators=(",", ":")), error))
    return results
