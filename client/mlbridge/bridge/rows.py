"""Turn a chunk's typed values into model inputs, and model outputs into results. Pure logic.

Values arrive as the database gives them over the binary protocol (float, int, Decimal, str,
bytes, date, datetime, None) or as JSON gives them (rows queued before typed rows, predict_row).
Each input column is converted to the model's dtype in one numpy call where it can be, and value
by value where it cannot: a value that does not fit fails its own row, with a message naming the
column and the problem, and the rest of the batch is still scored.

The wire contract for values (see README, "Values"):
- numbers and integers as the model's numeric dtype; text that is a complete number (`12`,
  `-1.5e3`) is taken for a numeric input, anything else (`1_000`, `nan`, `12abc`, ` 12`) is
  refused (NUMBER_TEXT);
- strings as UTF-8 bytes; dates and datetimes as ISO-8601 strings (`2024-05-01`,
  `2024-05-01T13:45:00`);
- NULL as a missing value: NaN for a float input and the empty string for a string input when
  the model takes missing values (its catalog input says `"missing": true`); otherwise the row
  fails naming the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "bfloat16": np.float32}
INT_DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
              "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}

# Text taken for a numeric input: a complete decimal number as SQL and JSON write one, and
# nothing else. An optional sign, ASCII digits with an optional decimal point, an optional
# exponent: `12`, `-1.5`, `.5`, `+2`, `7.`, `1e3`. Refused: digit separators (`1_000`), hex
# (`0x10`), words (`nan`, `inf`), other scripts' digits (`١٢`), and blanks anywhere, around the
# number too (` 12`, `12 `): MySQL's CAST skips leading blanks but warns on trailing ones, and
# Python's float() skips both; the bridge takes the column's text as it is, and says to TRIM()
# it in the query. Written so that a failed match costs time linear in the text's length (the
# former `\d+\.?\d*` backtracked quadratically on a long run of digits: 40 s for 40,000).
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Input:
    """One model input: its name, dtype and whether the model takes missing values."""

    name: str
    dtype: str
    missing: bool = False


@dataclass
class Result:
    """What becomes of one row: a score and the model's outputs as JSON, or an error."""

    seq: int
    score: float | None = None
    output: str | None = None
    error: str | None = None


@dataclass
class Batch:
    """The rows that passed conversion, the arrays to send (one per model input), and the rows
    that failed with their errors."""

    seqs: list[int] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    failed: list[Result] = field(default_factory=list)

    def take(self, index: slice) -> Batch:
        return Batch(self.seqs[index], {k: v[index] for k, v in self.inputs.items()})


class ValueRefused(ValueError):
    """A value the model input cannot take; the message names the column."""


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[:40]).decode("utf-8", "replace")
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_text(value: Any) -> str:
    """A value for a string input: dates and datetimes in ISO-8601, numbers as SQL writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):  # a TIME column: [-]HH:MM:SS
        seconds = int(value.total_seconds())
        sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
        return f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if isinstance(value, (set, frozenset)):  # a SET column, as the text protocol would give it
        return ",".join(sorted(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def convert_value(value: Any, spec: Input) -> Any:
    """One value to what `spec.dtype` holds; ValueRefused with a message naming the column."""
    column, dtype = spec.name, spec.dtype
    if value is None:
        if spec.missing and dtype in FLOAT_DTYPES:
            return math.nan
        if spec.missing and dtype == "string":
            return b""
        raise ValueRefused(f"column {column}: NULL, but the model needs a value ({dtype})")
    if dtype in FLOAT_DTYPES or dtype in INT_DTYPES:
        return _number(value, column, dtype)
    if dtype == "string":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return _as_text(value).encode()
    if dtype == "bool":
        if isinstance(value, bool) or (isinstance(value, (int, decimal.Decimal)) and value in (0, 1)):
            return bool(value)
        raise ValueRefused(f"column {column}: {_show(value)} is not true/false or 0/1")
    raise ValueRefused(f"column {column}: the model's input type {dtype} is not supported by the bridge yet")


def _number(value: Any, column: str, dtype: str) -> float | int:
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode()
        except UnicodeDecodeError:
            raise ValueRefused(f"column {column}: binary data is not a number ({dtype})") from None
    shown = value  # messages name the value as it came, not as converted
    if isinstance(value, str):
        value = _from_text(value, column, dtype)
    elif isinstance(value, decimal.Decimal):
        value = int(value) if dtype in INT_DTYPES and value == value.to_integral_value() else float(value)
    elif not isinstance(value, (int, float)):
        raise ValueRefused(f"column {column}: {_show(value)} is not a number ({dtype})")
    if dtype in FLOAT_DTYPES:
        try:
            value = float(value)
        except OverflowError:
            raise ValueRefused(f"column {column}: {_show(shown)} is out of range for {dtype}") from None
        if not math.isfinite(value):
            raise ValueRefused(f"column {column}: {_show(shown)} is not a finite number ({dtype})")
        if abs(value) > float(np.finfo(FLOAT_DTYPES[dtype]).max):
            raise ValueRefused(f"column {column}: {_show(shown)} is out of range for {dtype}")
        return value
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ValueRefused(f"column {column}: {_show(shown)} is not a whole number ({dtype})")
    info = np.iinfo(INT_DTYPES[dtype])
    if not info.min <= int(value) <= info.max:
        raise ValueRefused(f"column {column}: {_show(shown)} is out of range for {dtype}")
    return int(value)


def text_problem(text: str) -> str | None:
    """Why `text` is not taken for a numeric input (what to do about it), or None when it is a
    complete number (NUMBER_TEXT)."""
    if NUMBER_TEXT.fullmatch(text):
        return None
    if NUMBER_TEXT.fullmatch(text.strip()):
        return "it has blanks around it; TRIM() the column in the query"
    return "text for a numeric input must be a plain decimal number such as 12, -1.5 or 2e3"


_INFINITIES = (math.inf, -math.inf)


def _from_text(text: str, column: str, dtype: str) -> float | int:
    """A complete number's text as a float, or as the exact int for an integer input (never
    through a double: '9007199254740993' stays itself). Range is checked by the caller."""
    if NUMBER_TEXT.fullmatch(text) is None:
        raise ValueRefused(f"column {column}: {_show(text)} is not a number ({dtype}): {text_problem(text)}")
    if dtype not in INT_DTYPES:
        number = float(text)
        if number in _INFINITIES:  # beyond any double: 400 nines, 1e999
            raise ValueRefused(f"column {column}: {_show(text)} is out of range for {dtype}")
        return number
    if len(text) <= 20 and text.lstrip("+-").isdigit():  # the common case; ASCII digits (NUMBER_TEXT)
        return int(text)
    info = np.iinfo(INT_DTYPES[dtype])
    if not info.min - 1.0 <= float(text) <= info.max + 1.0:  # before any exact work on a huge text
        raise ValueRefused(f"column {column}: {_show(text)} is out of range for {dtype}")
    mantissa = text.lower().partition("e")[0]
    if not mantissa.strip("+-.0"):
        return 0
    try:
        exact = decimal.Decimal(text)
        whole = exact == exact.to_integral_value()
    except decimal.DecimalException:  # an exponent beyond Decimal's: 1e-99999999999999999999
        whole = False
    if not whole:
        raise ValueRefused(f"column {column}: {_show(text)} is not a whole number ({dtype})")
    return int(exact)


def _numpy_dtype(dtype: str):
    return FLOAT_DTYPES.get(dtype) or INT_DTYPES.get(dtype) or (np.bool_ if dtype == "bool" else object)


def _fast_column(values: Sequence[Any], spec: Input) -> tuple[np.ndarray, list[int]] | None:
    """A whole float column in one numpy call: (array, indexes of values to look at one by one),
    or None when the column holds anything but plain numbers."""
    if spec.dtype not in FLOAT_DTYPES:
        return None
    try:
        array = np.array(values, dtype=np.float64)  # None becomes NaN: looked at below
    except (TypeError, ValueError, OverflowError):
        return None
    if array.ndim != 1:
        return None
    limit = float(np.finfo(FLOAT_DTYPES[spec.dtype]).max)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(array) <= limit)  # NaN, infinities, out of range, NULL
    return array, np.flatnonzero(bad).tolist()


def convert_column(values: Sequence[Any], spec: Input) -> tuple[np.ndarray | list, dict[int, str]]:
    """The column as an array of the input's dtype, and {row index: error} for the values that
    do not fit (their slots hold a placeholder)."""
    errors: dict[int, str] = {}
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and spec.dtype in FLOAT_DTYPES:
        # a numeric column read as floats (bridge.source): only the range is left to check
        limit = float(np.finfo(FLOAT_DTYPES[spec.dtype]).max)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~(np.abs(values) <= limit))
        if not len(bad):
            return values, errors
        # MySQL's numeric columns hold no NaN: a NaN here was a NULL (None reads as NaN)
        values = [None if v != v else v for v in values.tolist()]
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    # numpy would parse text itself, leniently: text goes value by value, through the strict check
    plain = not any(isinstance(v, (str, bytes, bytearray, bool)) for v in values)
    fast = _fast_column(values, spec) if plain else None
    if fast is not None:
        array, look = fast
        for i in look:
            try:
                array[i] = convert_value(values[i], spec)
            except ValueRefused as exc:
                errors[i] = str(exc)
                array[i] = 0.0
        return array, errors
    out: list[Any] = []
    placeholder = b"" if spec.dtype == "string" else (False if spec.dtype == "bool" else 0)
    for i, value in enumerate(values):
        try:
            out.append(convert_value(value, spec))
        except ValueRefused as exc:
            errors[i] = str(exc)
            out.append(placeholder)
    return out, errors


def build_batch(seqs: Sequence[int], columns: Sequence[Sequence[Any]], specs: Sequence[Input]) -> Batch:
    """Convert rows given as columns (one sequence of values per input, in `specs` order) into
    one array per model input; rows with a value that does not fit fail alone."""
    errors: dict[int, str] = {}
    arrays = []
    for values, spec in zip(columns, specs):
        array, column_errors = convert_column(values, spec)
        for i, message in column_errors.items():
            errors.setdefault(i, message)
        arrays.append(array)
    batch = Batch()
    if errors:
        keep = [i for i in range(len(seqs)) if i not in errors]
        batch.failed = [Result(seqs[i], error=f"mlbridge: {errors[i]}") for i in sorted(errors)]
        batch.seqs = [seqs[i] for i in keep]
        index = np.array(keep, dtype=np.intp)
        for array, spec in zip(arrays, specs):
            batch.inputs[spec.name] = np.asarray(array, dtype=_numpy_dtype(spec.dtype))[index]
    else:
        batch.seqs = list(seqs)
        for array, spec in zip(arrays, specs):
            batch.inputs[spec.name] = np.asarray(array, dtype=_numpy_dtype(spec.dtype))
    return batch


def json_columns(seqs: Sequence[int], texts: Sequence[str],
                 names: Sequence[str]) -> tuple[list[int], list[list[Any]], list[Result]]:
    """Rows queued before typed rows carry a JSON array each: (seqs kept, columns, rows that fail)."""
    columns: list[list[Any]] = [[] for _ in names]
    failed, kept = [], []
    for seq, text in zip(seqs, texts):
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, list) or len(values) != len(names):
            got = len(values) if isinstance(values, list) else 0
            failed.append(Result(seq, error=f"mlbridge: row carries {got} values for {len(names)} inputs"))
            continue
        kept.append(seq)
        for column, value in zip(columns, values):
            column.append(value)
    return kept, columns, failed


def object_columns(features: str, names: Sequence[str]) -> list[list[Any]]:
    """predict_row's JSON object as one-value columns, in `names` order (checked at queue time)."""
    values = json.loads(features)
    return [[values.get(name)] for name in names]


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


def _fast_results(seqs: Sequence[int], outputs: dict[str, np.ndarray], score_output: str | None,
                  keep_output: bool = True):
    """The common case at the speed of a list comprehension: one value per row in every output,
    all finite numbers. None sends the batch down the general path. Without keep_output (the
    model's only output is its score) no output JSON is made."""
    if score_output is None or not outputs:
        return None
    if not keep_output and list(outputs) == [score_output]:
        array = outputs[score_output]
        if array.ndim == 1 and np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all():
            return [Result(seq, score) for seq, score in zip(seqs, array.astype(np.float64).tolist())]
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
    return [Result(seq, float(score), template % values)
            for seq, score, values in zip(seqs, scores, zip(*columns))]


def results(seqs: Sequence[int], outputs: dict[str, np.ndarray], score_output: str | None,
            keep_output: bool = True) -> list[Result]:
    """A Result for each row from the model's batch outputs."""
    _check_shapes(len(seqs), outputs)
    fast = _fast_results(seqs, outputs, score_output, keep_output)
    if fast is not None:
        return fast
    found = []
    for i, seq in enumerate(seqs):
        output = json.dumps({name: _jsonable(array[i]) for name, array in outputs.items()}, separators=(",", ":"))
        if score_output is None:
            found.append(Result(seq, None, output, f"mlbridge: the model has outputs {sorted(outputs)} and none is "
                                                    "named score; set models.score_output"))
            continue
        value = np.asarray(outputs[score_output][i]).reshape(-1)
        if value.size != 1:
            found.append(Result(seq, None, output, f"mlbridge: model output {score_output} holds {value.size} "
                                                    "values per row, not one score"))
            continue
        try:
            score = float(value[0])
        except (TypeError, ValueError):
            found.append(Result(seq, None, output, f"mlbridge: model output {score_output} is not a number"))
            continue
        if not math.isfinite(score):
            found.append(Result(seq, None, output, f"mlbridge: the model gave a non-finite score ({value[0]!r})"))
            continue
        found.append(Result(seq, score, output))
    return found
