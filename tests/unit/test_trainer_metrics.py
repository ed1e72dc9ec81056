"""Streaming metrics agree with scikit-learn's, batch by batch."""

import numpy as np
import pytest
from sklearn import metrics as skm

from mlbridge_server.trainer.metrics import BinaryMetrics, RegressionMetrics


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
