"""Quality metrics accumulated batch by batch, in memory that does not grow with the rows.

Binary classification: accuracy (at 0.5), auc, log_loss, positive_rate (the share of rows
whose label is 1, the base rate accuracy should beat). Multi-class: accuracy, log_loss,
majority_rate (the share of the most frequent class). Regression: rmse, mae, r2.

Each kind has one `headline` metric, higher is better, that model selection and reports use:
auc for binary, accuracy for multi-class, r2 for regression.
"""

from __future__ import annotations

import math

import numpy as np

from .columns import BINARY, MULTICLASS

# AUC from score histograms: ties within a bin count half, which puts the result within
# about 1/AUC_BINS of the exact (sorting) value while memory stays fixed.
AUC_BINS = 1 << 14
LOG_LOSS_EPS = 1e-7


class BinaryMetrics:
    def __init__(self) -> None:
        self.rows = 0
        self.correct = 0
        self.positives = 0
        self.log_loss_sum = 0.0
        self.pos_hist = np.zeros(AUC_BINS, dtype=np.int64)
        self.neg_hist = np.zeros(AUC_BINS, dtype=np.int64)

    def update(self, y_true: np.ndarray, score: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1) >= 0.5
        p = np.asarray(score, dtype=np.float64).reshape(-1)
        self.rows += y.size
        self.correct += int(np.count_nonzero((p >= 0.5) == y))
        self.positives += int(np.count_nonzero(y))
        pc = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        self.log_loss_sum += float(-np.sum(np.where(y, np.log(pc), np.log1p(-pc))))
        bins = np.clip((p * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        self.pos_hist += np.bincount(bins[y], minlength=AUC_BINS)
        self.neg_hist += np.bincount(bins[~y], minlength=AUC_BINS)

    def auc(self) -> float:
        pos, neg = self.pos_hist.sum(), self.neg_hist.sum()
        if pos == 0 or neg == 0:
            return math.nan
        # For each positive, the negatives below its bin count 1 and those in its bin 1/2.
        neg_below = np.cumsum(self.neg_hist) - self.neg_hist
        wins = np.sum(self.pos_hist * (neg_below + 0.5 * self.neg_hist))
        return float(wins / (pos * neg))

    def result(self) -> dict[str, float]:
        n = max(self.rows, 1)
        return {
            "accuracy": self.correct / n,
            "auc": self.auc(),
            "log_loss": self.log_loss_sum / n,
            "positive_rate": self.positives / n,
        }


class RegressionMetrics:
    def __init__(self) -> None:
        self.rows = 0
        self.sq_err = 0.0
        self.abs_err = 0.0
        # Label sums around a shift (the first batch's mean) keep the variance exact in floats.
        self.shift: float | None = None
        self.sum_d = 0.0
        self.sum_d2 = 0.0

    def update(self, y_true: np.ndarray, score: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1)
        p = np.asarray(score, dtype=np.float64).reshape(-1)
        if y.size == 0:
            return
        if self.shift is None:
            self.shift = float(y.mean())
        err = p - y
        self.rows += y.size
        self.sq_err += float(np.dot(err, err))
        self.abs_err += float(np.abs(err).sum())
        d = y - self.shift
        self.sum_d += float(d.sum())
        self.sum_d2 += float(np.dot(d, d))

    def result(self) -> dict[str, float]:
        n = max(self.rows, 1)
        total = self.sum_d2 - self.sum_d * self.sum_d / n
        return {
            "rmse": math.sqrt(self.sq_err / n),
            "mae": self.abs_err / n,
            "r2": 1.0 - self.sq_err / total if total > 0 else math.nan,
        }


class MulticlassMetrics:
    """`update` takes class indices (-1: a class the model never saw, always wrong) and the
    [rows, classes] probabilities."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.rows = 0
        self.correct = 0
        self.log_loss_sum = 0.0
        self.counts = np.zeros(classes + 1, dtype=np.int64)

    def update(self, y_true: np.ndarray, probabilities: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.int64).reshape(-1)
        p = np.asarray(probabilities, dtype=np.float64).reshape(len(y), -1)
        self.rows += y.size
        self.correct += int(np.count_nonzero(np.argmax(p, axis=1) == y))
        known = y >= 0
        picked = np.full(y.size, LOG_LOSS_EPS)
        picked[known] = p[np.arange(y.size)[known], y[known]]
        self.log_loss_sum += float(-np.sum(np.log(np.clip(picked, LOG_LOSS_EPS, 1.0))))
        self.counts += np.bincount(np.where(known, y, self.classes), minlength=self.classes + 1)

    def result(self) -> dict[str, float]:
        n = max(self.rows, 1)
        return {
            "accuracy": self.correct / n,
            "log_loss": self.log_loss_sum / n,
            "majority_rate": float(self.counts[: self.classes].max()) / n,
        }


HEADLINE = {BINARY: "auc", MULTICLASS: "accuracy"}


def headline(task: str) -> str:
    """The one metric, higher is better, that chooses among models and that reports show."""
    return HEADLINE.get(task, "r2")


def metrics_for(task: str, classes: int = 2) -> BinaryMetrics | MulticlassMetrics | RegressionMetrics:
    if task == BINARY:
        return BinaryMetrics()
    if task == MULTICLASS:
        return MulticlassMetrics(classes)
    return RegressionMetrics()
