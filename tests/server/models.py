"""Tiny real SavedModels for the server tests, built with plain TensorFlow.

"churn" is shaped like the trainer's models: named float32 [-1] inputs, a
float32 score and an int64 label. "text" shows the server is not tied to that
shape: a string and an int32 input. "slow" takes the seconds it is asked for (build_slow; not in
build_all: only the tests of slow calls build it); "large" carries tens of MB of weights
(build_large, for the memory test).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_churn(path: Path, weights: tuple[float, float, float]) -> Path:
    """score = sigmoid(a*x + b*y + c), label = score > 0.5."""
    import tensorflow as tf

    class Churn(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(list(weights), dtype=tf.float32)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32, name="x"),
                tf.TensorSpec([None], tf.float32, name="y"),
            ]
        )
        def serve(self, x, y):
            score = tf.sigmoid(self.w[0] * x + self.w[1] * y + self.w[2])
            return {"score": score, "label": tf.cast(score > 0.5, tf.int64)}

    module = Churn()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def build_text(path: Path) -> Path:
    """upper = upper-case text, length = its length (int64), twice = 2*n (int32);
    a second signature "parse" turns text into float64."""
    import tensorflow as tf

    class Text(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([None], tf.int32, name="n"),
            ]
        )
        def serve(self, text, n):
            return {
                "upper": tf.strings.upper(text),
                "length": tf.cast(tf.strings.length(text), tf.int64),
                "twice": n * 2,
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def parse(self, text):
            # fails at run time on text that is not a number
            return {"number": tf.strings.to_number(text, out_type=tf.float64)}

    module = Text()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve, "parse": module.parse}
    )
    return path


def build_slow(path: Path) -> Path:
    """waited = the seconds it spent: a tf.while_loop that runs until max(seconds) have passed
    (by tf.timestamp), so a call takes as long as it asks whatever the machine's speed."""
    import tensorflow as tf

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
        def serve(self, seconds):
            start = tf.timestamp()
            wanted = tf.cast(tf.reduce_max(seconds), tf.float64)
            elapsed = tf.while_loop(
                lambda e: e < wanted, lambda e: [tf.timestamp() - start], [tf.constant(0.0, tf.float64)]
            )[0]
            return {"waited": tf.zeros_like(seconds) + tf.cast(elapsed, tf.float32)}

    module = Slow()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def build_large(path: Path, megabytes: int) -> Path:
    """score = x * w[0, 0] + w[-1, -1], with ``megabytes`` of float32 weights (all read at load):
    a model big enough that memory an unload leaves behind shows."""
    import numpy as np
    import tensorflow as tf

    class Large(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            weights = np.full((megabytes * 256, 1024), 0.5, dtype=np.float32)
            weights[-1, -1] = 1.0
            self.w = tf.Variable(weights)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"score": x * self.w[0, 0] + self.w[-1, -1]}

    module = Large()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


CHURN_V1 = (0.5, -0.25, 0.1)
CHURN_V2 = (-1.5, 0.75, 0.2)


def build_all(root: Path) -> dict[str, Path]:
    """Every model the tests use, each in its own folder under ``root``."""
    return {
        "churn_v1": build_churn(root / "churn_v1", CHURN_V1),
        "churn_v2": build_churn(root / "churn_v2", CHURN_V2),
        "text": build_text(root / "text"),
    }


def call_directly(path: Path, **inputs):
    """The SavedModel's own answer, to compare the server's with."""
    import tensorflow as tf

    function = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
