"""What a training query's columns are: features, the label, the key; and the task they make.

Pure rules, no database and no TensorFlow: they work on the (name, type code) pairs of a
cursor's description and on a few aggregate values.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from mysql.connector import FieldType

from mlbridge.errors import MlbridgeError

# Column types a feature or label may have: the integer types, DECIMAL, FLOAT and DOUBLE.
# BIT, YEAR and the temporal types are numbers of a sort, but not ones a model should see raw.
NUMERIC_TYPES = frozenset(
    {
        FieldType.TINY,
        FieldType.SHORT,
        FieldType.INT24,
        FieldType.LONG,
        FieldType.LONGLONG,
        FieldType.DECIMAL,
        FieldType.NEWDECIMAL,
        FieldType.FLOAT,
        FieldType.DOUBLE,
    }
)

BINARY = "binary"
REGRESSION = "regression"

DEFAULT_KEY = "id"

_MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
_MODEL_REF = re.compile(r"(?P<name>[^:@]+)(?::(?P<version>\d+)|@(?P<label>[A-Za-z0-9_.-]{1,64}))?")


# Protocol type names users would not recognise, as they write them in DDL.
_FRIENDLY_TYPES = {
    FieldType.NEWDECIMAL: "DECIMAL",
    FieldType.VAR_STRING: "VARCHAR",
    FieldType.VARCHAR: "VARCHAR",
    FieldType.STRING: "CHAR",
    FieldType.TINY_BLOB: "TEXT/BLOB",
    FieldType.MEDIUM_BLOB: "TEXT/BLOB",
    FieldType.LONG_BLOB: "TEXT/BLOB",
    FieldType.BLOB: "TEXT/BLOB",
    FieldType.NULL: "NULL (a bare NULL literal)",
}


def type_name(type_code: int) -> str:
    """A cursor type code by the name users write in DDL (VARCHAR rather than VAR_STRING)."""
    return _FRIENDLY_TYPES.get(type_code) or FieldType.get_info(type_code) or f"type {type_code}"


def is_numeric(type_code: int) -> bool:
    return type_code in NUMERIC_TYPES


def serving_name_problem(name: str) -> str | None:
    """Why a column name cannot be a SavedModel signature input, or None when it can.

    TensorFlow turns signature inputs into Python parameter names: names that are not plain
    ASCII identifiers are silently renamed (`mean radius` becomes `mean_radius`, `_x` becomes
    `arg__x`) and Python keywords or `self` fail outright. A served model whose input keys
    differ from the column names would break matching by name, so such columns are refused.
    """
    if not (name.isascii() and name.isidentifier()):
        return "is not a plain identifier (letters, digits and _, not starting with a digit)"
    if name.startswith("_"):
        return "starts with _"
    if keyword.iskeyword(name) or name == "self":
        return "is a reserved word in TensorFlow signatures"
    return None


@dataclass(frozen=True)
class Columns:
    """Where each role sits in the query's result: positions into the description."""

    names: tuple[str, ...]
    features: tuple[int, ...]
    label: int
    key: int | None

    @property
    def feature_names(self) -> list[str]:
        return [self.names[i] for i in self.features]

    @property
    def label_name(self) -> str:
        return self.names[self.label]

    @property
    def key_name(self) -> str | None:
        return None if self.key is None else self.names[self.key]


def find_column(names: list[str] | tuple[str, ...], wanted: str) -> int | None:
    """Position of a column: an exact match first, then a case-insensitive one (MySQL's rule)."""
    for i, name in enumerate(names):
        if name == wanted:
            return i
    lowered = [i for i, name in enumerate(names) if name.lower() == wanted.lower()]
    return lowered[0] if len(lowered) == 1 else None


def classify_columns(
    description: list[tuple[str, int]], label: str, key: str | None = None
) -> Columns:
    """Split a query's columns into features, label and key.

    `description` is (name, type code) per column, in query order. The key is `key` when given
    (it must then be present) or `id` when the query has one; it is never a feature and may be
    of any type. Every other column but the label is a feature and must be numeric.
    """
    names = tuple(name for name, _ in description)
    listing = ", ".join(names)
    label_pos = find_column(names, label)
    if label_pos is None:
        raise MlbridgeError(
            f"mlbridge: the label column {label!r} is not among the query's columns ({listing}); "
            "add it to the SELECT or pass the right --label"
        )
    label_type = description[label_pos][1]
    if not is_numeric(label_type):
        raise MlbridgeError(
            f"mlbridge: the label column {names[label_pos]!r} is {type_name(label_type)}: only numeric "
            "labels are supported yet (0/1 for binary classification, numbers for regression)"
        )
    key_pos = find_column(names, key or DEFAULT_KEY)
    if key is not None and key_pos is None:
        raise MlbridgeError(
            f"mlbridge: the key column {key!r} is not among the query's columns ({listing}); "
            "add it to the SELECT or pass the right --key"
        )
    if key_pos == label_pos:
        raise MlbridgeError(
            f"mlbridge: the column {names[label_pos]!r} cannot be both the label and the key; "
            "pass another --key or --label"
        )
    features = []
    for pos, (name, type_code) in enumerate(description):
        if pos in (label_pos, key_pos):
            continue
        if not is_numeric(type_code):
            raise MlbridgeError(
                f"mlbridge: the feature column {name!r} is {type_name(type_code)}: features must be "
                "numeric (INT types, DECIMAL, FLOAT, DOUBLE); cast it in the query or leave it out"
            )
        problem = serving_name_problem(name)
        if problem:
            raise MlbridgeError(
                f"mlbridge: the feature column {name!r} {problem}, so it cannot be a model input "
                f"name; rename it in the query (`... AS {_suggest(name)}`)"
            )
        features.append(pos)
    if not features:
        raise MlbridgeError(
            f"mlbridge: the query has no feature columns besides the label and the key ({listing}); "
            "select the columns the model should learn from"
        )
    return Columns(names=names, features=tuple(features), label=label_pos, key=key_pos)


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "x"
    if cleaned[0].isdigit() or keyword.iskeyword(cleaned) or cleaned == "self":
        cleaned = "c_" + cleaned
    return cleaned


def choose_task(label: str, rows: int, not_binary: int, minimum: float, maximum: float) -> str:
    """Binary classification when every label value is 0 or 1; regression otherwise.

    `not_binary` counts the rows whose label is neither 0 nor 1 (one SQL aggregate gives it,
    with MIN and MAX). A label with a single value leaves nothing to learn.
    """
    if minimum == maximum:
        raise MlbridgeError(
            f"mlbridge: the label column {label!r} has the same value ({minimum:g}) in all {rows} "
            "usable rows: there is nothing to learn; check the query's WHERE clause"
        )
    return BINARY if not_binary == 0 else REGRESSION


def validate_model_name(name: str) -> str:
    """Model names become directory names under the model base and catalog keys."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise MlbridgeError(
            f"mlbridge: {name!r} is not a valid model name: use 1 to 64 letters, digits, _, - "
            "and ., not starting with ."
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """`name` (the newest version), `name:3` (a version) or `name@canary` (a catalog label)."""

    name: str
    version: int | None = None
    label: str | None = None


def parse_model_ref(text: str) -> ModelRef:
    match = _MODEL_REF.fullmatch(text or "")
    if not match:
        raise MlbridgeError(
            f"mlbridge: {text!r} is not a model reference: use NAME, NAME:VERSION or NAME@LABEL"
        )
    name = validate_model_name(match["name"])
    version = int(match["version"]) if match["version"] else None
    if version == 0:
        raise MlbridgeError(f"mlbridge: {text!r}: model versions start at 1")
    return ModelRef(name=name, version=version, label=match["label"])
