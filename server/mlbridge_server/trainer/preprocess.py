"""The preprocessing every model carries inside its SavedModel: raw column values in, the
features a model fits on out. Training runs these very functions on the training rows, and
serving runs them again in the exported graph, so what a model sees never drifts between the two.

Inputs, one [None] tensor per feature column, named after it: float32 for numbers (NaN is a
NULL), text for strings, ENUM, SET and dates (ISO-8601; "" is a NULL).

Two encodings, for two kinds of model (features.py documents the rules):
- `dense`: one float32 matrix for the linear model and the network: standardised numbers and
  dates, one-hot categories with an out-of-vocabulary slot, indicators for SET members,
  calendar parts, and missing indicators. NULLs are imputed to 0 after standardising (the mean).
- `tree`: named columns for gradient-boosted trees, which split on raw values and take missing
  values as they are: numbers raw (NaN stays NaN), strings raw, SET members and date parts
  as numbers.
"""

from __future__ import annotations

import math

import tensorflow as tf

from .columns import CATEGORY, DATE, NUMBER, SET
from .features import FeatureSpec

# YYYY-MM-DD, optionally followed by T or a space and HH:MM[:SS[.fraction]]; anything else is
# treated as missing rather than failing the batch.
_ISO = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"


def parse_iso(texts: tf.Tensor):
    """(ok, days since 1970 as float64 with the time of day, month 1-12, weekday 0=Sunday,
    hour) of ISO-8601 texts; the numbers are meaningless where ok is False."""
    ok = tf.strings.regex_full_match(texts, _ISO)
    s = tf.where(ok, texts, "1970-01-01")
    s = tf.where(tf.strings.length(s) < 16, tf.strings.join([tf.strings.substr(s, 0, 10), "T00:00"]), s)
    s = tf.where(tf.strings.length(s) < 19, tf.strings.join([tf.strings.substr(s, 0, 16), ":00"]), s)

    def part(pos, length):
        return tf.strings.to_number(tf.strings.substr(s, pos, length), tf.int64)

    y, m, d = part(0, 4), part(5, 2), part(8, 2)
    hh, mm, ss = part(11, 2), part(14, 2), part(17, 2)
    # Days from the civil date (H. Hinnant's algorithm), exact for the proleptic Gregorian calendar.
    y = y - tf.cast(m <= 2, tf.int64)
    era = tf.math.floordiv(y, 400)
    yoe = y - era * 400
    doy = tf.math.floordiv(153 * tf.math.floormod(m + 9, 12) + 2, 5) + d - 1
    doe = yoe * 365 + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100) + doy
    days = era * 146097 + doe - 719468
    weekday = tf.math.floormod(days + 4, 7)
    fraction = tf.cast(hh * 3600 + mm * 60 + ss, tf.float64) / 86400.0
    return ok, tf.cast(days, tf.float64) + fraction, m, weekday, hh


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


class Preprocessor(tf.Module):
    def __init__(self, specs: list[FeatureSpec]) -> None:
        super().__init__(name="mlbridge_preprocessing")
        self.specs = list(specs)
        self._tables = {}
        for spec in self.specs:
            if not spec.vocab:
                continue
            if spec.kind == NUMBER:
                keys = tf.constant([int(v) for v in spec.vocab], dtype=tf.int64)
            else:
                keys = tf.constant([str(v) for v in spec.vocab], dtype=tf.string)
            values = tf.range(len(spec.vocab), dtype=tf.int64)
            table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values),
                                              default_value=len(spec.vocab))
            self._tables[spec.name] = table
        # Tracked by tf.Module as a list, so the tables are saved with the model.
        self.tables = list(self._tables.values())

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def input_signature(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.float32 if s.kind == NUMBER else tf.string, name=s.name) for s in self.specs]

    # -- the dense matrix ----------------------------------------------------------------------

    def _one_hot(self, spec: FeatureSpec, index: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
        """Vocabulary slots plus the out-of-vocabulary slot; all zeros for a missing value."""
        index = tf.where(missing, tf.constant(-1, tf.int64), index)
        return tf.one_hot(index, len(spec.vocab) + 1, dtype=tf.float32)

    def _dense_column(self, spec: FeatureSpec, x: tf.Tensor) -> list[tf.Tensor]:
        parts = []
        if spec.kind == NUMBER:
            x = tf.cast(x, tf.float32)
            missing = tf.math.is_nan(x)
            z = tf.where(missing, 0.0, (x - spec.mean) / spec.std)
            parts.append(z[:, None])
            if spec.vocab:
                whole = tf.cast(tf.round(tf.where(missing, 0.0, x)), tf.int64)
                parts.append(self._one_hot(spec, self._tables[spec.name].lookup(whole), missing))
        elif spec.kind == CATEGORY:
            missing = tf.equal(x, "")
            parts.append(self._one_hot(spec, self._tables[spec.name].lookup(x), missing))
        elif spec.kind == SET:
            missing = tf.equal(x, "")
            members = tf.strings.split(x, ",")
            index = tf.ragged.map_flat_values(self._tables[spec.name].lookup, members)
            hot = tf.reduce_sum(tf.one_hot(index, len(spec.vocab) + 1, dtype=tf.float32), axis=1)
            parts.append(tf.minimum(hot, 1.0) * _f32(~missing)[:, None])
        elif spec.kind == DATE:
            ok, days, month, weekday, hour = parse_iso(x)
            missing = ~ok
            z = tf.where(missing, 0.0, _f32((days - spec.mean) / spec.std))
            parts.append(z[:, None])
            parts.append(tf.one_hot(tf.where(missing, tf.constant(-1, tf.int64), month - 1), 12))
            parts.append(tf.one_hot(tf.where(missing, tf.constant(-1, tf.int64), weekday), 7))
            if spec.has_time:
                angle = _f32(hour) * (2 * math.pi / 24)
                parts.append(tf.stack([tf.sin(angle), tf.cos(angle)], axis=1) * _f32(~missing)[:, None])
        else:  # pragma: no cover - specs are made by features.py
            raise ValueError(spec.kind)
        if spec.nulls:
            parts.append(_f32(missing)[:, None])
        return parts

    def dense(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = []
        for spec in self.specs:
            parts += self._dense_column(spec, inputs[spec.name])
        return tf.concat(parts, axis=1)

    def dense_width(self) -> int:
        width = 0
        for spec in self.specs:
            if spec.kind == NUMBER:
                width += 1 + (len(spec.vocab) + 1 if spec.vocab else 0)
            elif spec.kind in (CATEGORY, SET):
                width += len(spec.vocab) + 1
            else:
                width += 1 + 12 + 7 + (2 if spec.has_time else 0)
            width += 1 if spec.nulls else 0
        return width

    # -- columns for trees ---------------------------------------------------------------------

    def tree(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {}
        nan = tf.constant(math.nan, tf.float32)
        for spec in self.specs:
            x = inputs[spec.name]
            if spec.kind == NUMBER:
                out[spec.name] = tf.cast(x, tf.float32)
            elif spec.kind == CATEGORY:
                out[spec.name] = x
            elif spec.kind == SET:
                members = tf.strings.split(x, ",")
                index = tf.ragged.map_flat_values(self._tables[spec.name].lookup, members)
                hot = tf.minimum(tf.reduce_sum(tf.one_hot(index, len(spec.vocab) + 1), axis=1), 1.0)
                present = tf.not_equal(x, "")
                for i in range(len(spec.vocab)):
                    out[f"{spec.name}__{i}"] = tf.where(present, hot[:, i], nan)
            elif spec.kind == DATE:
                ok, days, month, weekday, hour = parse_iso(x)
                out[f"{spec.name}__days"] = tf.where(ok, _f32(days), nan)
                out[f"{spec.name}__month"] = tf.where(ok, _f32(month), nan)
                out[f"{spec.name}__weekday"] = tf.where(ok, _f32(weekday), nan)
                if spec.has_time:
                    out[f"{spec.name}__hour"] = tf.where(ok, _f32(hour), nan)
        return out
