"""Quality metrics accumulated batch by batch, in memory that does not grow with the rows.

Binary classification (positive class 1, predicted positive at a score of 0.5 or more):
accuracy, precision, recall, f1, roc_auc (also under its older name `auc`, which stored
catalogs and model selection use), log_loss, positive_rate (the share of rows whose label is 1,
the base rate accuracy should beat).

Multi-class (predicted class: the most probable): accuracy, precision, recall and f1 as macro
averages over the classes seen in the labels or the predictions, roc_auc (one-vs-rest, macro
averaged), log_loss, majority_rate (the share of the most frequent class).

Regression: rmse, mae, r2.

A ratio whose denominator is 0 (the precision of a class never predicted, the recall of one
never present) is 0.0, as scikit-learn's zero_division=0 makes it: such a model gets no credit
for that class rather than an undefined score. AUC is NaN where it is undefined (no positive or
no negative rows).

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
# Multi-class keeps a histogram per class, so fewer bins: 1000 classes take 16 MB.
CLASS_AUC_BINS = 1 << 10
# Entries (rows x classes) binned at once: bounds the temporary arrays of a wide batch.
CLASS_AUC_CHUNK = 1 << 22
LOG_LOSS_EPS = 1e-7
# The logit of 1 - LOG_LOSS_EPS: the range multi-class AUC bins cover.
LOGIT_LIMIT = math.log((1 - LOG_LOSS_EPS) / LOG_LOSS_EPS)
# Metrics where lower is better; every other one is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def _ratio(num, den):
    """num / den, 0.0 where den is 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _auc(pos_hist: np.ndarray, neg_hist: np.ndarray) -> np.ndarray:
    """The AUC of score histograms along the last axis; NaN without positives or negatives."""
    pos = pos_hist.sum(axis=-1).astype(np.float64)
    neg = neg_hist.sum(axis=-1).astype(np.float64)
    # For each positive, the negatives below its bin count 1 and those in its bin 1/2.
    neg_below = np.cumsum(neg_hist, axis=-1) - neg_hist
    wins = np.sum(pos_hist * (neg_below + 0.5 * neg_hist), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), wins / (pos * neg), np.nan)


class BinaryMetrics:
    """`update` takes 0/1 labels and the positive class's probability. Precision, recall and
    f1 are 0.0 where their denominator is 0 (nothing predicted positive, no positive rows)."""

    def __init__(self) -> None:
        self.rows = 0
        self.correct = 0
        self.positives = 0
        self.true_pos = 0
        self.predicted_pos = 0
        self.log_loss_sum = 0.0
        self.pos_hist = np.zeros(AUC_BINS, dtype=np.int64)
        self.neg_hist = np.zeros(AUC_BINS, dtype=np.int64)

    def update(self, y_true: np.ndarray, score: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1) >= 0.5
        p = np.asarray(score, dtype=np.float64).reshape(-1)
        said = p >= 0.5
        self.rows += y.size
        self.correct += int(np.count_nonzero(said == y))
        self.positives += int(np.count_nonzero(y))
        self.true_pos += int(np.count_nonzero(said & y))
        self.predicted_pos += int(np.count_nonzero(said))
        pc = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        self.log_loss_sum += float(-np.sum(np.where(y, np.log(pc), np.log1p(-pc))))
        bins = np.clip((p * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        self.pos_hist += np.bincount(bins[y], minlength=AUC_BINS)
        self.neg_hist += np.bincount(bins[~y], minlength=AUC_BINS)

    def auc(self) -> float:
        return float(_auc(self.pos_hist, self.neg_hist))

    def result(self) -> dict[str, float]:
        n = max(self.rows, 1)
        auc = self.auc()
        return {
            "accuracy": self.correct / n,
            "precision": float(_ratio(self.true_pos, self.predicted_pos)),
            "recall": float(_ratio(self.true_pos, self.positives)),
            "f1": float(_ratio(2 * self.true_pos, self.predicted_pos + self.positives)),
            "roc_auc": auc,
            "auc": auc,
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


def _logit_bins(p: np.ndarray, bins: int) -> np.ndarray:
    """Histogram bins, even in the logit of the probability. AUC depends only on the order of
    the scores, and softmax outputs crowd near 0 when there are many classes: bins even in the
    probability would put most rows of a class in the first few, counting them as ties."""
    # float32: a bin is far coarser than its rounding, and this is the costly step (rows x classes).
    pc = np.clip(p.astype(np.float32), np.float32(LOG_LOSS_EPS), np.float32(1 - LOG_LOSS_EPS))
    z = np.log(pc / (1 - pc))
    z += np.float32(LOGIT_LIMIT)
    z *= np.float32(bins / (2 * LOGIT_LIMIT))
    return np.clip(z.astype(np.int64), 0, bins - 1)


class MulticlassMetrics:
    """`update` takes class indices (-1: a class the model never saw, always wrong) and the
    [rows, classes] probabilities.

    Precision, recall and f1 are macro averages over the classes seen in the labels or the
    predictions, as scikit-learn's average='macro' with zero_division=0. Rows of classes the
    model never saw count as one more class, never predicted (precision, recall and f1 0): the
    same as scikit-learn's when they are all one class.

    roc_auc is the one-vs-rest AUC of each class's probability, macro averaged over the classes
    with both positive and negative rows: for the others it is undefined (scikit-learn refuses
    to compute it), and leaving them out keeps a class absent from the rows scored from making
    the whole figure NaN. Rows of unseen classes are negatives for every class. It is the costly
    metric (every row goes into every class's histogram): `roc_auc=False` leaves it out."""

    def __init__(self, classes: int, roc_auc: bool = True) -> None:
        self.classes = classes
        self.rows = 0
        self.correct = 0
        self.log_loss_sum = 0.0
        self.counts = np.zeros(classes + 1, dtype=np.int64)  # per label; the last: unseen
        self.predicted = np.zeros(classes, dtype=np.int64)
        self.hits = np.zeros(classes, dtype=np.int64)
        shape = (classes, CLASS_AUC_BINS) if roc_auc else (0, 0)
        self.pos_hist = np.zeros(shape, dtype=np.int64)
        self.all_hist = np.zeros(shape, dtype=np.int64)

    def update(self, y_true: np.ndarray, probabilities: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.int64).reshape(-1)
        p = np.asarray(probabilities, dtype=np.float64).reshape(len(y), -1)
        if y.size == 0:
            return
        said = np.argmax(p, axis=1)
        hit = said == y
        self.rows += y.size
        self.correct += int(np.count_nonzero(hit))
        known = y >= 0
        picked = np.full(y.size, LOG_LOSS_EPS)
        picked[known] = p[np.arange(y.size)[known], y[known]]
        self.log_loss_sum += float(-np.sum(np.log(np.clip(picked, LOG_LOSS_EPS, 1.0))))
        self.counts += np.bincount(np.where(known, y, self.classes), minlength=self.classes + 1)
        self.predicted += np.bincount(said, minlength=self.classes)
        self.hits += np.bincount(y[hit], minlength=self.classes)
        if not self.pos_hist.size:
            return
        step = max(1, CLASS_AUC_CHUNK // max(self.classes, 1))
        for start in range(0, y.size, step):
            self._bin(y[start : start + step], p[start : start + step])

    def _bin(self, y: np.ndarray, p: np.ndarray) -> None:
        """Every row into each class's histogram, and its own class's row into that class's
        positives (the negatives are the difference)."""
        size = self.classes * CLASS_AUC_BINS
        flat = _logit_bins(p, CLASS_AUC_BINS) + np.arange(self.classes) * CLASS_AUC_BINS
        self.all_hist += np.bincount(flat.reshape(-1), minlength=size).reshape(self.classes, -1)
        known = y >= 0
        own = flat[np.arange(y.size)[known], y[known]]
        self.pos_hist += np.bincount(own, minlength=size).reshape(self.classes, -1)

    def roc_auc(self) -> float:
        per_class = _auc(self.pos_hist, self.all_hist - self.pos_hist)
        defined = per_class[~np.isnan(per_class)]
        return float(defined.mean()) if defined.size else math.nan

    def _macro(self) -> dict[str, float]:
        true = self.counts[: self.classes]
        seen = (true > 0) | (self.predicted > 0)
        # Unseen classes' rows: one class more, never predicted, so 0 for all three ratios.
        count = int(np.count_nonzero(seen)) + (1 if self.counts[self.classes] else 0)
        if count == 0:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {
            "precision": float(_ratio(self.hits, self.predicted)[seen].sum() / count),
            "recall": float(_ratio(self.hits, true)[seen].sum() / count),
            "f1": float(_ratio(2 * self.hits, self.predicted + true)[seen].sum() / count),
        }

    def result(self) -> dict[str, float]:
        n = max(self.rows, 1)
        auc = {"roc_auc": self.roc_auc()} if self.pos_hist.size else {}
        return {
            "accuracy": self.correct / n,
            **self._macro(),
            **auc,
            "log_loss": self.log_loss_sum / n,
            "majority_rate": float(self.counts[: self.classes].max()) / n,
        }


HEADLINE = {BINARY: "auc", MULTICLASS: "accuracy"}


def headline(task: str) -> str:
    """The one metric, higher is better, that chooses among models and that reports show."""
    return HEADLINE.get(task, "r2")


def metrics_for(task: str, classes: int = 2, *,
                headline_only: bool = False) -> BinaryMetrics | MulticlassMetrics | RegressionMetrics:
    """`headline_only` leaves out what costs much and is not the headline (multi-class AUC), for
    callers that score the same rows many times over: resampling, permutation importance."""
    if task == BINARY:
        return BinaryMetrics()
    if task == MULTICLASS:
        return MulticlassMetrics(classes, roc_auc=not headline_only)
    return RegressionMetrics()
