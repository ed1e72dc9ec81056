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

# How each MySQL column type reaches a model. The connector's type codes, with the flags and
# character set of the column where the code alone is ambiguous (ENUM and SET arrive as CHAR
# with a flag; TEXT and BLOB share one code and differ by character set, 63 being binary).
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
        FieldType.YEAR,
        FieldType.BIT,
    }
)
INTEGER_TYPES = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.INT24, FieldType.LONG, FieldType.LONGLONG, FieldType.YEAR,
     FieldType.BIT}
)
TEXT_TYPES = frozenset(
    {
        FieldType.VARCHAR,
        FieldType.VAR_STRING,
        FieldType.STRING,
        FieldType.TINY_BLOB,
        FieldType.MEDIUM_BLOB,
        FieldType.LONG_BLOB,
        FieldType.BLOB,
        FieldType.ENUM,
        FieldType.SET,
        FieldType.JSON,
    }
)
DATE_TYPES = frozenset(
    {FieldType.DATE, FieldType.NEWDATE, FieldType.DATETIME, FieldType.TIMESTAMP}
)
BINARY_CHARSET = 63
ENUM_FLAG = 256
SET_FLAG = 2048

# What a column is to the model.
NUMBER = "number"  # normalised; low-cardinality integers also become categories
CATEGORY = "category"  # a vocabulary with an out-of-vocabulary bucket, one-hot
SET = "set"  # a SET: one indicator per member
DATE = "date"  # days since 1970 and calendar parts

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASKS = (REGRESSION, BINARY, MULTICLASS)

DEFAULT_KEY = "id"
MAX_CLASSES = 1000

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


def type_name(type_code: int, flags: int = 0, charset: int | None = None) -> str:
    """A column's type by the name users write in DDL (VARCHAR rather than VAR_STRING)."""
    if flags & ENUM_FLAG:
        return "ENUM"
    if flags & SET_FLAG:
        return "SET"
    if type_code in (FieldType.TINY_BLOB, FieldType.MEDIUM_BLOB, FieldType.LONG_BLOB, FieldType.BLOB):
        return "BLOB" if charset == BINARY_CHARSET else "TEXT"
    if type_code in (FieldType.VAR_STRING, FieldType.VARCHAR) and charset == BINARY_CHARSET:
        return "VARBINARY"
    if type_code == FieldType.STRING and charset == BINARY_CHARSET:
        return "BINARY"
    return _FRIENDLY_TYPES.get(type_code) or FieldType.get_info(type_code) or f"type {type_code}"


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
class SqlColumn:
    """A result column as the cursor describes it."""

    name: str
    type_code: int
    flags: int = 0
    charset: int | None = None

    @property
    def type_name(self) -> str:
        return type_name(self.type_code, self.flags, self.charset)

    @property
    def integer(self) -> bool:
        return self.type_code in INTEGER_TYPES


def describe_cursor(description) -> list[SqlColumn]:
    """SqlColumns from a DB-API cursor description (the connector adds flags and charset)."""
    out = []
    for d in description:
        flags = d[7] if len(d) > 7 and d[7] is not None else 0
        charset = d[8] if len(d) > 8 else None
        out.append(SqlColumn(d[0], d[1], flags, charset))
    return out


def _as_sql_column(c) -> SqlColumn:
    return c if isinstance(c, SqlColumn) else SqlColumn(c[0], c[1], *c[2:4])


def feature_kind(column: SqlColumn) -> str | None:
    """NUMBER, CATEGORY, SET or DATE; None for a type no model here can take."""
    code = column.type_code
    if column.flags & SET_FLAG or code == FieldType.SET:
        return SET
    if code in NUMERIC_TYPES:
        return NUMBER
    if code in DATE_TYPES:
        return DATE
    if code in TEXT_TYPES:
        # Binary strings are bytes with no character set: nothing says how to read them.
        return None if column.charset == BINARY_CHARSET and not column.flags & ENUM_FLAG else CATEGORY
    return None


def _refusal(column: SqlColumn) -> str:
    kind = column.type_name
    if column.charset == BINARY_CHARSET and column.type_code in TEXT_TYPES:
        fix = f"convert it to text in the query (`CONVERT({column.name} USING utf8mb4)`) or leave it out"
    elif column.type_code == FieldType.TIME:
        fix = f"turn it into a number in the query (`TIME_TO_SEC({column.name})`) or leave it out"
    else:
        fix = "cast it to a number or a string in the query, or leave it out"
    return (f"mlbridge: the feature column {column.name!r} is {kind}, which no model here can take: {fix} "
            "(features may be numbers, DECIMAL, strings, ENUM, SET, BOOLEAN, DATE, DATETIME and TIMESTAMP)")


@dataclass(frozen=True)
class Columns:
    """Where each role sits in the query's result: positions into the description, and what
    each feature is to the model."""

    names: tuple[str, ...]
    features: tuple[int, ...]
    label: int | None
    key: int | None
    kinds: tuple[str, ...] = ()  # per feature
    label_kind: str = NUMBER  # NUMBER or CATEGORY
    sql: tuple[SqlColumn, ...] = ()

    @property
    def feature_names(self) -> list[str]:
        return [self.names[i] for i in self.features]

    @property
    def label_name(self) -> str | None:
        return None if self.label is None else self.names[self.label]

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


def classify_columns(description, label: str | None, key: str | None = None) -> Columns:
    """Split a query's columns into features, label and key.

    `description` is SqlColumns (or (name, type code[, flags, charset]) tuples) in query order.
    `label` None: every column but the key is a feature (a Dataset of features alone).
    The key is `key` when given (it must then be present) or `id` when the query has one; it is
    never a feature and may be of any type. Every other column but the label is a feature; a
    column no model can take is refused by name, with the fix.
    """
    cols = [_as_sql_column(c) for c in description]
    names = tuple(c.name for c in cols)
    listing = ", ".join(names)
    label_pos, label_kind = None, NUMBER
    if label is not None:
        label_pos = find_column(names, label)
        if label_pos is None:
            raise MlbridgeError(
                f"mlbridge: the label column {label!r} is not among the query's columns ({listing}); "
                "add it to the SELECT or pass the right --label"
            )
        label_col = cols[label_pos]
        label_kind = feature_kind(label_col)
        if label_kind in (SET, DATE, None):
            raise MlbridgeError(
                f"mlbridge: the label column {names[label_pos]!r} is {label_col.type_name}: a label must be "
                "a number (regression, or 0/1 for binary classification) or a string or ENUM (classes)"
            )
    key_pos = find_column(names, key or DEFAULT_KEY)
    if key is not None and key_pos is None:
        raise MlbridgeError(
            f"mlbridge: the key column {key!r} is not among the query's columns ({listing}); "
            "add it to the SELECT or pass the right --key"
        )
    if key_pos is not None and key_pos == label_pos:
        raise MlbridgeError(
            f"mlbridge: the column {names[label_pos]!r} cannot be both the label and the key; "
            "pass another --key or --label"
        )
    features, kinds = [], []
    for pos, column in enumerate(cols):
        if pos in (label_pos, key_pos):
            continue
        kind = feature_kind(column)
        if kind is None:
            raise MlbridgeError(_refusal(column))
        problem = serving_name_problem(column.name)
        if problem:
            raise MlbridgeError(
                f"mlbridge: the feature column {column.name!r} {problem}, so it cannot be a model input "
                f"name; rename it in the query (`... AS {_suggest(column.name)}`)"
            )
        features.append(pos)
        kinds.append(kind)
    if not features:
        raise MlbridgeError(
            f"mlbridge: the query has no feature columns besides the label and the key ({listing}); "
            "select the columns the model should learn from"
        )
    return Columns(names=names, features=tuple(features), label=label_pos, key=key_pos, kinds=tuple(kinds),
                   label_kind=label_kind, sql=tuple(cols))


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "x"
    if cleaned[0].isdigit() or keyword.iskeyword(cleaned) or cleaned == "self":
        cleaned = "c_" + cleaned
    return cleaned


def choose_task(label: str, label_kind: str, distinct: list, requested: str | None = None) -> str:
    """The task the label makes, or the one asked for when the label allows it.

    Numbers make a regression, unless every value is 0 or 1 (binary classification); strings
    make a classification, binary with two classes. `distinct` holds the label's distinct
    values (all of them, or the first few hundred for a numeric label). A label with a single
    value leaves nothing to learn.
    """
    if len(distinct) < 2:
        shown = distinct[0] if distinct else None
        raise MlbridgeError(
            f"mlbridge: the label column {label!r} has the same value ({shown!r}) in every training row: "
            "there is nothing to learn; check the query's WHERE clause"
        )
    if requested is not None and requested not in TASKS:
        raise MlbridgeError(f"mlbridge: unknown task {requested!r}: use one of {', '.join(TASKS)}")
    if label_kind == CATEGORY or requested == MULTICLASS:
        if len(distinct) > MAX_CLASSES:
            raise MlbridgeError(
                f"mlbridge: the label column {label!r} has more than {MAX_CLASSES} distinct values: at most {MAX_CLASSES} "
                "classes can be learned (is it an identifier?); pick another label or group its values"
            )
    if label_kind == CATEGORY:
        if requested == REGRESSION:
            raise MlbridgeError(
                f"mlbridge: the label column {label!r} holds strings, which cannot be a regression target; "
                "cast it to a number in the query or pick --task binary or multiclass"
            )
        natural = BINARY if len(distinct) == 2 else MULTICLASS
        if requested == BINARY and natural != BINARY:
            raise MlbridgeError(
                f"mlbridge: --task binary needs a label with two classes; {label!r} has {len(distinct)}"
            )
        return requested or natural
    zero_one = set(distinct) <= {0, 1}
    if requested in (None, REGRESSION):
        return requested or (BINARY if zero_one else REGRESSION)
    if requested == BINARY and not zero_one:
        raise MlbridgeError(
            f"mlbridge: --task binary needs a 0/1 label; {label!r} has other values; use --task multiclass"
        )
    if requested == MULTICLASS and any(float(v) != int(v) for v in distinct):
        raise MlbridgeError(
            f"mlbridge: --task multiclass needs whole-number or string classes; {label!r} has fractions"
        )
    return requested


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
