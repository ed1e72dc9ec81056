"""What the trainer learns of each column, and the preprocessing in the SavedModel built from it."""

import datetime as dt

import numpy as np
import pytest
import tensorflow as tf

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import CATEGORY, DATE, NUMBER, SET
from mlbridge_server.trainer.features import MAX_VOCAB, FeatureSpec, TrainingStats, iso_days
from mlbridge_server.trainer.preprocess import Preprocessor, parse_iso


def stats_of(columns: dict, kinds: dict, integers=()) -> dict[str, FeatureSpec]:
    names = list(columns)
    stats = TrainingStats(names, [kinds[n] for n in names], [n in integers for n in names], "y", NUMBER)
    n = len(next(iter(columns.values())))
    stats.update(columns, np.zeros(n), np.ones(n, dtype=bool))
    return {s.name: s for s in stats.specs()}


def test_numbers_get_mean_std_and_a_missing_flag():
    spec = stats_of({"a": np.array([1.0, 3.0, np.nan], np.float32)}, {"a": NUMBER})["a"]
    assert (spec.mean, spec.std, spec.nulls, spec.vocab) == (2.0, 1.0, True, [])


def test_low_cardinality_integers_also_become_categories():
    specs = stats_of({"lvl": np.array([1, 2, 3, 2] * 10, np.float32), "n": np.arange(40, dtype=np.float32)},
                     {"lvl": NUMBER, "n": NUMBER}, integers=("lvl", "n"))
    assert specs["lvl"].vocab == [1, 2, 3] and specs["n"].vocab == []


def test_vocabulary_keeps_the_most_frequent_values():
    values = np.array([f"v{i}" for i in range(MAX_VOCAB + 50) for _ in range(1 + (i < 3))] + [""], dtype=object)
    spec = stats_of({"c": values}, {"c": CATEGORY})["c"]
    assert len(spec.vocab) == MAX_VOCAB and spec.vocab[:3] == ["v0", "v1", "v2"] and spec.nulls


def test_a_constant_column_divides_by_one():
    assert stats_of({"a": np.full(5, 7.0, np.float32)}, {"a": NUMBER})["a"].std == 1.0


@pytest.mark.parametrize("day", [dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2000, 2, 29),
                                 dt.date(2024, 3, 1), dt.date(1900, 3, 1), dt.date(2099, 12, 31)])
def test_dates_parse_in_the_graph_as_python_counts_them(day):
    ok, days, month, weekday, hour = parse_iso(tf.constant([day.isoformat(), f"{day.isoformat()}T13:30:00"]))
    epoch = (day - dt.date(1970, 1, 1)).days
    assert ok.numpy().tolist() == [True, True]
    assert days.numpy().tolist() == [epoch, epoch + 13.5 / 24]
    assert month.numpy()[0] == day.month and weekday.numpy()[0] == day.isoweekday() % 7 and hour.numpy()[1] == 13
    assert iso_days(np.array([day.isoformat()], dtype=object))[0][0] == epoch


def test_bad_dates_are_missing_not_errors():
    ok, *_ = parse_iso(tf.constant(["", "yesterday", "2024-5-1", "2024-05-01 07:00"]))
    assert ok.numpy().tolist() == [False, False, False, True]


SPECS = [
    FeatureSpec("a", NUMBER, mean=1.0, std=2.0, nulls=True),
    FeatureSpec("c", CATEGORY, vocab=["x", "y"], nulls=True),
    FeatureSpec("s", SET, vocab=["p", "q"]),
    FeatureSpec("d", DATE, mean=0.0, std=1.0, has_time=False),
]
RAW = {"a": tf.constant([3.0, np.nan], tf.float32), "c": tf.constant(["y", "never seen"]),
       "s": tf.constant(["q,p", ""]), "d": tf.constant(["1970-01-02", ""])}


def test_dense_encoding():
    pre = Preprocessor(SPECS)
    out = pre.dense(RAW).numpy()
    assert out.shape == (2, pre.dense_width())
    # a: (3 - 1) / 2, then its missing flag
    assert out[0, :2].tolist() == [1.0, 0.0] and out[1, :2].tolist() == [0.0, 1.0]
    # c: x, y, out-of-vocabulary, missing flag
    assert out[0, 2:6].tolist() == [0, 1, 0, 0] and out[1, 2:6].tolist() == [0, 0, 1, 0]
    # s: p, q, other members
    assert out[0, 6:9].tolist() == [1, 1, 0] and out[1, 6:9].tolist() == [0, 0, 0]
    # d: days (standardised), month one-hot (January), weekday one-hot (Friday = 5)
    assert out[0, 9] == 1.0 and out[0, 10] == 1 and out[0, 10 + 12 + 5] == 1
    assert not out[1, 9:].any()


def test_tree_encoding_keeps_raw_values_and_missing():
    tree = {k: v.numpy() for k, v in Preprocessor(SPECS).tree(RAW).items()}
    assert tree["a"][0] == 3.0 and np.isnan(tree["a"][1])
    assert tree["c"].tolist() == [b"y", b"never seen"]
    assert tree["s__0"][0] == 1 and np.isnan(tree["s__0"][1])
    assert tree["d__days"][0] == 1.0 and np.isnan(tree["d__days"][1])


def test_label_nulls_are_counted_and_refused():
    stats = TrainingStats(["a"], [NUMBER], [False], "y", CATEGORY)
    stats.update({"a": np.zeros(3, np.float32)}, np.array(["a", None, None], dtype=object), np.ones(3, dtype=bool))
    with pytest.raises(MlbridgeError, match="NULL in 2 of 3 rows"):
        stats.label.check()


def test_a_number_beyond_float32_is_refused_by_name():
    with pytest.raises(MlbridgeError, match="column 'big' holds values beyond what a float32"):
        stats_of({"big": np.array([1.0, np.float32(np.inf)], np.float32)}, {"big": NUMBER})
