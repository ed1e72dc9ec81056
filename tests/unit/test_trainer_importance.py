"""Permutation importance with fake models: a column the model reads matters, one it ignores
scores exactly 0."""

import numpy as np
import pytest

from mlbridge_server.trainer import importance
from mlbridge_server.trainer.importance import permutation_importance
from mlbridge_server.trainer.learners import Task


def _table(rows=3000, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=rows).astype(np.float32),
        "b": rng.normal(size=rows).astype(np.float32),
        "colour": rng.choice(np.array(["red", "green", "blue"], dtype=object), size=rows),
    }


def _regression(features):
    return {"score": 3.0 * features["a"]}


def test_regression_reads_only_column_a():
    features = _table()
    label = 3.0 * features["a"] + np.random.default_rng(1).normal(scale=0.1, size=3000)
    got = permutation_importance(_regression, features, label, Task("regression"))
    assert got[0]["column"] == "a"
    by = {r["column"]: r for r in got}
    assert by["a"]["importance"] > 1.5 and by["a"]["std"] > 0  # r2 ~1 falls to about -1
    assert by["b"]["importance"] == 0.0 and by["b"]["std"] == 0.0
    assert by["colour"]["importance"] == 0.0
    assert all(r["metric"] == "r2" and r["baseline"] == pytest.approx(0.999, abs=1e-3) for r in got)


def test_lower_is_better_metric_keeps_positive_importance():
    features = _table()
    label = 3.0 * features["a"]
    by = {r["column"]: r for r in permutation_importance(_regression, features, label, Task("regression"),
                                                         score="rmse")}
    assert by["a"]["baseline"] == pytest.approx(0.0, abs=1e-5)
    assert by["a"]["importance"] > 3.0 and by["b"]["importance"] == 0.0


def test_binary_classifier_on_one_column():
    features = _table()
    label = (features["b"] > 0).astype(np.int64)

    def predict(f):
        return {"score": 1.0 / (1.0 + np.exp(-5.0 * f["b"])), "label": (f["b"] > 0).astype(np.int64)}

    got = permutation_importance(predict, features, label, Task("binary", [0, 1]), repeats=4, seed=3)
    assert got[0]["column"] == "b" and got[0]["metric"] == "auc" and got[0]["baseline"] == 1.0
    assert got[0]["importance"] == pytest.approx(0.5, abs=0.05)  # AUC falls to chance
    assert {r["column"]: r["importance"] for r in got[1:]} == {"a": 0.0, "colour": 0.0}


def test_multiclass_on_a_string_column():
    """Object arrays shuffle like numbers; accuracy is the headline."""
    features = _table()
    classes = ["blue", "green", "red"]
    label = features["colour"].copy()

    def predict(f):
        scores = np.full((len(f["colour"]), 3), 0.1, dtype=np.float32)
        scores[np.arange(len(scores)), [classes.index(c) for c in f["colour"]]] = 0.8
        return {"scores": scores}

    got = permutation_importance(predict, features, label, Task("multiclass", classes))
    assert got[0]["column"] == "colour" and got[0]["baseline"] == 1.0
    assert got[0]["importance"] == pytest.approx(2 / 3, abs=0.05)
    auc = permutation_importance(predict, features, label, Task("multiclass", classes), score="roc_auc")
    assert auc[0]["column"] == "colour" and auc[0]["metric"] == "roc_auc"


def test_rows_are_scored_in_batches_with_the_same_result(monkeypatch):
    features = _table(rows=1000)
    label = 3.0 * features["a"] + np.random.default_rng(2).normal(size=1000)
    whole = permutation_importance(_regression, features, label, Task("regression"), seed=5)
    sizes = []

    def predict(f):
        sizes.append(len(f["a"]))
        return _regression(f)

    monkeypatch.setattr(importance, "SCORE_ROWS", 300)
    batched = permutation_importance(predict, features, label, Task("regression"), seed=5)
    assert max(sizes) == 300 and sum(sizes) == 1000 * (1 + 3 * 3)
    for w, b in zip(whole, batched):
        assert w["column"] == b["column"] and w["importance"] == pytest.approx(b["importance"], rel=1e-9)


def test_shuffles_depend_on_seed_and_name_not_on_column_order():
    features = _table(rows=500)
    label = 3.0 * features["a"] + np.random.default_rng(2).normal(size=500)
    task = Task("regression")
    first = permutation_importance(_regression, features, label, task, seed=1)
    reordered = permutation_importance(_regression, dict(reversed(list(features.items()))), label, task, seed=1)
    assert first == reordered
    other = permutation_importance(_regression, features, label, task, seed=2)
    assert other[0]["importance"] != first[0]["importance"]


def test_bad_input_is_refused():
    features = _table(rows=10)
    with pytest.raises(ValueError, match="no metric 'auc'"):
        permutation_importance(_regression, features, np.zeros(10), Task("regression"), score="auc")
    with pytest.raises(ValueError, match="do not have"):
        permutation_importance(_regression, features, np.zeros(9), Task("regression"))
    with pytest.raises(ValueError, match="none"):
        permutation_importance(_regression, {"a": np.zeros(0)}, np.zeros(0), Task("regression"))
    with pytest.raises(ValueError, match="repeats"):
        permutation_importance(_regression, features, np.zeros(10), Task("regression"), repeats=0)
