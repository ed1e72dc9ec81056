"""Permutation importance: how much a model's score drops when one input column's values are
shuffled across the rows. Shuffling breaks the column's link to the label (and to the other
columns) while keeping its values, so the drop is what the model owes to that column (Breiman's
random forests, scikit-learn's permutation_importance). It needs nothing but predictions, so it
reads every kind of model alike, the exported signature included.

The model comes in as `predict(features) -> outputs`, a serving signature's outputs as numpy
arrays (what evaluate and training.measure_blocks pass), and its outputs become metrics the way
they do there: export.probabilities, then learners.accumulate. Those modules load TensorFlow, so
they are imported when a score is computed, never with this module.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from .metrics import LOWER_IS_BETTER, headline, metrics_for

SCORE_ROWS = 65_536  # rows per predict call: bounds the memory of the outputs


def permutation_importance(
    predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    features: dict[str, np.ndarray],
    label: np.ndarray,
    task,
    *,
    repeats: int = 3,
    seed: int = 0,
    score: str | None = None,
) -> list[dict]:
    """One row per input column, most important first (ties by name, NaN importances last):
    {"column", "importance", "std", "metric", "baseline"}.

    `score` names the metric (default: the task's headline, metrics.headline). `importance` is
    the mean over `repeats` shuffles of how much worse the metric gets: baseline - shuffled, or
    shuffled - baseline for a lower-is-better metric (log_loss, rmse, mae), so positive always
    means the model uses the column and about 0 means it does not. `std` is the standard
    deviation of the drop over the repeats (ddof 0, as scikit-learn's). Every row carries the
    metric's name and its `baseline` value on the unshuffled rows: the rows make a table on
    their own, and importance / baseline reads as a share of the score.

    `task` is a learners.Task. Each column's shuffles come from `seed` and the column's name,
    so they do not change with the other columns or their order."""
    rows = _rows(features, label)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    metric = score or headline(task.kind)
    headline_only = _check_metric(task, metric)
    baseline = _score(predict, features, label, task, metric, headline_only)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    result = []
    for name in features:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        drops = np.array([
            sign * (baseline - _score(predict, _shuffled(features, name, rows, rng), label, task, metric, headline_only))
            for _ in range(repeats)
        ])
        result.append({"column": name, "importance": float(drops.mean()), "std": float(drops.std()),
                       "metric": metric, "baseline": baseline})
    result.sort(key=lambda r: (np.isnan(r["importance"]), -r["importance"], r["column"]))
    return result


def _rows(features: dict[str, np.ndarray], label: np.ndarray) -> int:
    rows = len(label)
    if rows == 0:
        raise ValueError("permutation importance needs labelled rows; there are none")
    uneven = [name for name, values in features.items() if len(values) != rows]
    if uneven:
        raise ValueError(f"column(s) {', '.join(uneven)} do not have the label's {rows} rows")
    return rows


def _check_metric(task, metric: str) -> bool:
    """Whether the cheap metrics (metrics_for's headline_only) include `metric`: a shuffle is
    scored `repeats` times per column, and multi-class AUC is costly. Refuses a metric the task
    does not have, before any row is scored."""
    classes = len(task.classes)
    if metric in metrics_for(task.kind, classes, headline_only=True).result():
        return True
    names = metrics_for(task.kind, classes).result()
    if metric not in names:
        raise ValueError(f"{task.kind} models have no metric {metric!r}; they have {', '.join(sorted(names))}")
    return False


def _shuffled(features: dict[str, np.ndarray], name: str, rows: int, rng: np.random.Generator) -> dict:
    """The features with one column's values in a random order across all the rows (a copy of
    that column only; any dtype, strings and objects included)."""
    return {**features, name: features[name][rng.permutation(rows)]}


def _score(predict, features: dict[str, np.ndarray], label: np.ndarray, task, metric: str,
           headline_only: bool) -> float:
    """The metric of the model's predictions, predicted SCORE_ROWS rows at a time."""
    from .export import probabilities
    from .learners import accumulate

    measured = metrics_for(task.kind, len(task.classes), headline_only=headline_only)
    for start in range(0, len(label), SCORE_ROWS):
        part = slice(start, start + SCORE_ROWS)
        outputs = predict({k: v[part] for k, v in features.items()})
        accumulate(measured, task, label[part], probabilities(outputs, task))
    return float(measured.result()[metric])
