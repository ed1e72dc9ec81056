"""Which model auto keeps: the best on the validation rows, or a simpler one within one
standard error of it."""

import numpy as np

from mlbridge_server.trainer.learners import Fitted, Task, choose, measure


def fitted(kind, task, y, predicted):
    return Fitted(kind, None, validation=measure(task, y, predicted), predicted=predicted)


def test_a_clear_winner_is_kept():
    rng = np.random.default_rng(0)
    y = rng.normal(size=5000)
    task = Task("regression")
    fits = [fitted("linear", task, y, y * 0.3 + rng.normal(size=5000)),
            fitted("mlp", task, y, y + rng.normal(scale=0.3, size=5000)),
            fitted("gbt", task, y, y * 0.5 + rng.normal(size=5000))]
    assert choose(fits, task, y).kind == "mlp"


def test_a_win_within_the_noise_goes_to_the_simpler_model():
    """Two predictions of the same quality on 30 rows: the trees look better by chance."""
    rng = np.random.default_rng(21)
    y = rng.normal(size=30)
    task = Task("regression")
    linear = y + rng.normal(size=30)
    trees = y + rng.normal(size=30)
    fits = [fitted("gbt", task, y, trees), fitted("linear", task, y, linear)]
    assert fits[0].score > fits[1].score  # trees look better on these 20 rows...
    assert choose(fits, task, y).kind == "linear"  # ...by less than the noise


def test_classification_uses_its_headline_metric():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=3000).astype(float)
    task = Task("binary", [0, 1])
    good = np.clip(y * 0.6 + rng.uniform(0, 0.4, size=3000), 0, 1)
    weak = rng.uniform(size=3000)
    assert choose([fitted("linear", task, y, weak), fitted("gbt", task, y, good)], task, y).kind == "gbt"
