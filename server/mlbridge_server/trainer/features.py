"""What the training rows say about each column: the statistics the model's preprocessing is
built from (means, spreads, vocabularies), gathered block by block over the training rows only.

Pure numpy: no TensorFlow here. The preprocessing layers (preprocess.py) are made from the
FeatureSpecs this module returns, and the specs are saved beside the model (mlbridge.json).

Rules, decided here once:
- NUMBER: standardised with the training mean and standard deviation. An integer column with
  at most INT_CATEGORY_MAX distinct values (BOOLEAN, a rating, a level) is also one-hot
  encoded, so a model sees both its order and its categories.
- CATEGORY (strings, ENUM): the MAX_VOCAB most frequent values (ties broken by the value) make
  the vocabulary; every other value, including one never seen in training, shares an
  out-of-vocabulary slot.
- SET: one indicator per member, members from the same vocabulary rule.
- DATE: days since 1970-01-01 (with the time of day as a fraction), standardised, plus month
  and day of week, and the hour where any value has a time of day.
- NULL: imputed (the mean, or no category), with a missing indicator for every column that
  had a NULL in training. A NULL served to a column that never had one is still imputed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from mlbridge.errors import MlbridgeError

from .columns import CATEGORY, DATE, NUMBER, SET

MAX_VOCAB = 100
INT_CATEGORY_MAX = 20
# A column with more distinct values than this is counted no further (its vocabulary is the
# most frequent of the first ones seen): memory stays bounded on a free-text column.
MAX_COUNTED = 200_000
LABEL_CLASSES_MAX = 1_000


@dataclass
class FeatureSpec:
    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    nulls: bool = False
    vocab: list = field(default_factory=list)
    has_time: bool = False

    @property
    def dtype(self) -> str:
        """The model input's dtype: numbers as float32, everything else as text."""
        return "float32" if self.kind == NUMBER else "string"

    def to_json(self) -> dict:
        return asdict(self)



class _Moments:
    """Count, mean and variance around a shift (the first value), exact enough in floats."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: float | None = None
        self.s1 = 0.0
        self.s2 = 0.0

    def add(self, x: np.ndarray) -> None:
        if not x.size:
            return
        if self.shift is None:
            self.shift = float(x[0])
        d = x.astype(np.float64) - self.shift
        self.n += x.size
        self.s1 += float(d.sum())
        self.s2 += float(np.dot(d, d))

    @property
    def mean(self) -> float:
        return (self.shift or 0.0) + self.s1 / self.n if self.n else 0.0

    @property
    def std(self) -> float:
        if self.n < 2:
            return 1.0
        var = max(self.s2 / self.n - (self.s1 / self.n) ** 2, 0.0)
        std = math.sqrt(var)
        # A constant column: dividing by 1 leaves it a harmless constant for any value served.
        return std if std > 1e-12 * max(1.0, abs(self.mean)) else 1.0


def iso_days(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Days since 1970 (float, NaN where empty or unparsable) of ISO-8601 texts, and whether
    any has a time of day."""
    try:
        stamps = np.array(values.tolist(), dtype="datetime64[us]")
    except ValueError:  # one unparsable text: the slow way, value by value
        stamps = np.array([_stamp(t) for t in values.tolist()], dtype="datetime64[us]")
    missing = np.isnat(stamps)
    micros = stamps.astype(np.int64)
    days = np.where(missing, np.nan, micros / 86_400e6)
    has_time = bool(np.any((micros % 86_400_000_000 != 0) & ~missing)) or any(
        len(t) > 10 for t in values[~missing][:1000].tolist()
    )
    return days, has_time


def _stamp(text: str):
    try:
        return np.datetime64(text, "us")
    except ValueError:
        return np.datetime64("NaT")


class ColumnStats:
    def __init__(self, name: str, kind: str, integer: bool = False) -> None:
        self.name, self.kind, self.integer = name, kind, integer
        self.rows = 0
        self.nulls = 0
        self.moments = _Moments()
        self.counts: Counter = Counter()
        self.distinct: set | None = set() if integer else None
        self.has_time = False

    def _count(self, values) -> None:
        if len(self.counts) < MAX_COUNTED:
            self.counts.update(values)
        else:
            self.counts.update(v for v in values if v in self.counts)

    def update(self, values: np.ndarray) -> None:
        self.rows += len(values)
        if self.kind == NUMBER:
            present = values[~np.isnan(values)]
            self.nulls += len(values) - len(present)
            if not np.isfinite(present).all():
                raise MlbridgeError(
                    f"mlbridge: the column {self.name!r} holds values beyond what a float32 model input can hold "
                    f"(about ±3.4e38); scale it in the query (`{self.name} / 1e30 AS {self.name}`) or leave it out"
                )
            self.moments.add(present)
            if self.distinct is not None:
                self.distinct.update(np.unique(present).tolist())
                if len(self.distinct) > INT_CATEGORY_MAX:
                    self.distinct = None
        elif self.kind == CATEGORY:
            empty = values == ""
            self.nulls += int(np.count_nonzero(empty))
            self._count(values[~empty].tolist())
        elif self.kind == SET:
            empty = values == ""
            self.nulls += int(np.count_nonzero(empty))
            for text in values[~empty]:
                self._count(text.split(","))
        elif self.kind == DATE:
            days, has_time = iso_days(values)
            present = days[~np.isnan(days)]
            self.nulls += len(values) - len(present)
            self.moments.add(present)
            self.has_time = self.has_time or has_time

    def spec(self) -> FeatureSpec:
        spec = FeatureSpec(self.name, self.kind, nulls=self.nulls > 0)
        if self.kind in (NUMBER, DATE):
            spec.mean, spec.std = self.moments.mean, self.moments.std
        if self.kind == NUMBER and self.distinct is not None and 2 <= len(self.distinct) <= INT_CATEGORY_MAX:
            spec.vocab = sorted(int(v) for v in self.distinct)
        if self.kind in (CATEGORY, SET):
            ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            spec.vocab = [value for value, _ in ranked[:MAX_VOCAB]]
        spec.has_time = self.has_time
        return spec


def label_nulls(label: np.ndarray) -> int:
    """NULLs in a label column as the source converts it: NaN for numbers, None for text."""
    if label.dtype.kind == "f":
        return int(np.count_nonzero(np.isnan(label)))
    return sum(1 for v in label.tolist() if v is None)


class LabelStats:
    """The label over every row read (NULLs are an error) and its classes or moments over the
    training rows."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.nulls = 0
        self.rows = 0
        self.counts: Counter = Counter()
        self.moments = _Moments()

    def update_all(self, label: np.ndarray) -> None:
        self.rows += len(label)
        self.nulls += label_nulls(label)

    def update_train(self, label: np.ndarray) -> None:
        if self.kind == NUMBER:
            present = label[~np.isnan(label)]
            self.moments.add(present)
            if len(self.counts) <= LABEL_CLASSES_MAX:
                self.counts.update(present.tolist())
        elif len(self.counts) <= LABEL_CLASSES_MAX:  # past that, choose_task refuses the label anyway
            self.counts.update(v for v in label.tolist() if v is not None)

    def check(self) -> None:
        if self.nulls:
            raise MlbridgeError(
                f"mlbridge: the label column {self.name!r} is NULL in {self.nulls} of {self.rows} rows: "
                f"a label must be known to learn from; filter them out (`WHERE {self.name} IS NOT NULL`) or fill them"
            )

    def distinct(self) -> list:
        return sorted(self.counts)


class TrainingStats:
    def __init__(self, names: list[str], kinds: list[str], integers: list[bool], label: str,
                 label_kind: str) -> None:
        self.columns = [ColumnStats(n, k, i) for n, k, i in zip(names, kinds, integers)]
        self.label = LabelStats(label, label_kind)
        self.train_rows = 0

    def update(self, features: dict[str, np.ndarray], label: np.ndarray, is_train: np.ndarray) -> None:
        self.label.update_all(label)
        if not is_train.any():
            return
        self.train_rows += int(np.count_nonzero(is_train))
        for col in self.columns:
            col.update(features[col.name][is_train])
        self.label.update_train(label[is_train])

    def specs(self) -> list[FeatureSpec]:
        return [c.spec() for c in self.columns]


def encode_label(label: np.ndarray, task: str, classes: list) -> np.ndarray:
    """Class indices (int64; -1 for a class unseen in training) or the numbers (float64)."""
    from .columns import REGRESSION

    if task == REGRESSION:
        return label.astype(np.float64)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) for v in label.tolist()], dtype=np.int64)
