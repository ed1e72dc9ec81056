"""Streaming metrics agree with scikit-learn's, batch by batch."""

import numpy as np
import pytest
from sklearn import metrics as skm

from mlbridge_server.trainer.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics, headline


def _in_batches(acc, y, p, size=37):
    for start in range(0, len(y), size):
        acc.update(y[start : start + size], p[start : start + size])
    return acc.result()


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.3).astype(float)
    p = np.clip(0.3 * y + 0.7 * rng.random(2000), 0, 1)
    got = _in_batches(BinaryMetrics(), y, p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-3)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-6)
    assert got["positive_rate"] == pytest.approx(y.mean())


def test_auc_of_perfect_and_single_class_scores():
    acc = BinaryMetrics()
    acc.update(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert acc.result()["auc"] == 1.0
    only = BinaryMetrics()
    only.update(np.array([1, 1]), np.array([0.1, 0.9]))
    assert np.isnan(only.result()["auc"])


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = 1e6 + 50 * rng.standard_normal(1500)  # a large offset must not cost r2 its precision
    p = y + 10 * rng.standard_normal(1500)
    got = _in_batches(RegressionMetrics(), y, p)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-6)


def test_binary_precision_recall_f1_match_sklearn():
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.4).astype(float)
    p = np.clip(0.35 * y + 0.65 * rng.random(3000), 0, 1)
    got = _in_batches(BinaryMetrics(), y, p, size=211)
    said = p >= 0.5
    assert got["precision"] == pytest.approx(skm.precision_score(y, said), rel=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, said), rel=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, said), rel=1e-12)
    assert got["roc_auc"] == got["auc"]
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-3)


def test_binary_all_predicted_negative_gives_zero_precision():
    y = np.array([0, 1, 1, 0, 1], dtype=float)
    got = _in_batches(BinaryMetrics(), y, np.full(5, 0.2), size=2)
    assert got["precision"] == 0.0 and got["recall"] == 0.0 and got["f1"] == 0.0
    assert got["accuracy"] == pytest.approx(0.4)


def test_binary_batch_with_one_class_only():
    acc = BinaryMetrics()
    acc.update(np.zeros(4), np.array([0.1, 0.6, 0.3, 0.2]))  # negatives only
    acc.update(np.ones(3), np.array([0.7, 0.4, 0.9]))  # positives only
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.3, 0.2, 0.7, 0.4, 0.9])
    got = acc.result()
    assert got["precision"] == pytest.approx(skm.precision_score(y, p >= 0.5))
    assert got["recall"] == pytest.approx(skm.recall_score(y, p >= 0.5))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-3)


def _probabilities(rng, y, classes, signal=1.5):
    """Softmax scores that favour the true class."""
    logits = rng.normal(size=(len(y), classes))
    logits[np.arange(len(y)), y] += signal
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [3, 7, 40])
def test_multiclass_metrics_match_sklearn(classes):
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, size=4000)
    p = _probabilities(rng, y, classes)
    got = _in_batches(MulticlassMetrics(classes), y, p, size=333)
    said = p.argmax(axis=1)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == pytest.approx(fn(y, said, average="macro", zero_division=0), rel=1e-12), name
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, said))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(classes)), rel=1e-6)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=2e-3)


def test_multiclass_auc_holds_with_many_classes_of_small_probabilities():
    """Softmax over 300 classes puts most probabilities near 1/300; the bins must still tell
    them apart."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 300, size=6000)
    p = _probabilities(rng, y, 300, signal=1.0)
    got = _in_batches(MulticlassMetrics(300), y, p, size=1000)
    present = np.unique(y)
    expected = np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in present])
    assert got["roc_auc"] == pytest.approx(expected, abs=2e-3)


def test_multiclass_with_a_class_absent_from_the_labels():
    """Class 2 is never a label: macro precision/recall/f1 count it only where predicted, and
    its AUC (undefined) is left out of the average."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=1500)
    p = _probabilities(rng, y, 3, signal=1.0)
    said = p.argmax(axis=1)
    assert (said == 2).any()
    got = _in_batches(MulticlassMetrics(3), y, p, size=100)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == pytest.approx(fn(y, said, average="macro", zero_division=0), rel=1e-12), name
    expected = np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in (0, 1)])
    assert got["roc_auc"] == pytest.approx(expected, abs=2e-3)


def test_multiclass_batch_with_one_class_only_and_unseen_labels():
    """A batch of class 0 alone, then one with a label the model never saw (-1): that counts
    as one more class, never predicted, as scikit-learn counts an extra label."""
    p1 = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]])
    p2 = np.array([[0.1, 0.1, 0.8], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    acc = MulticlassMetrics(3)
    acc.update(np.array([0, 0]), p1)
    acc.update(np.array([2, 1, -1]), p2)
    got = acc.result()
    y = np.array([0, 0, 2, 1, 3])
    said = np.concatenate([p1, p2]).argmax(axis=1)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == pytest.approx(fn(y, said, average="macro", zero_division=0), rel=1e-12), name
    assert got["accuracy"] == pytest.approx(0.6)
    p = np.concatenate([p1, p2])
    expected = np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in range(3)])
    assert got["roc_auc"] == pytest.approx(expected, abs=2e-3)


def test_multiclass_auc_is_nan_without_any_class_to_average_and_can_be_left_out():
    acc = MulticlassMetrics(3)
    acc.update(np.array([1, 1]), np.array([[0.2, 0.5, 0.3], [0.1, 0.8, 0.1]]))
    assert np.isnan(acc.result()["roc_auc"])
    cheap = MulticlassMetrics(3, roc_auc=False)
    cheap.update(np.array([1, 0]), np.array([[0.2, 0.5, 0.3], [0.1, 0.8, 0.1]]))
    assert "roc_auc" not in cheap.result() and cheap.result()["accuracy"] == 0.5


def test_headline_is_unchanged():
    assert (headline("binary"), headline("multiclass"), headline("regression")) == ("auc", "accuracy", "r2")
