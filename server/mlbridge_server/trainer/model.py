"""The network the trainer fits, and the SavedModel it exports for TensorFlow Serving.

Keras here is tf_keras (Keras 2), not Keras 3: multi-worker training on the roadmap needs
tf.distribute.MultiWorkerMirroredStrategy, whose `fit` fails under Keras 3 (keras issue 20585)
and works under tf_keras of the same TensorFlow version.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from .columns import BINARY

SCORE = "score"
LABEL = "label"
SIGNATURE = "serving_default"


def build_model(
    n_features: int,
    mean: np.ndarray,
    variance: np.ndarray,
    task: str,
    *,
    hidden: tuple[int, ...] = (64, 32),
    dropout: float = 0.1,
    learning_rate: float = 1e-3,
) -> tf_keras.Model:
    """An MLP on a [rows, features] matrix. The first layer standardises with the mean and
    variance SQL computed, so the model takes raw column values. Binary: one sigmoid unit
    trained on cross-entropy. Regression: one linear unit trained on the standardised label
    (the serving function undoes that)."""
    inputs = tf_keras.Input(shape=(n_features,), name="features")
    x = tf_keras.layers.Normalization(
        axis=-1,
        mean=np.asarray(mean, dtype=np.float32),
        variance=np.asarray(variance, dtype=np.float32),
        name="normalization",
    )(inputs)
    for i, units in enumerate(hidden):
        x = tf_keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = tf_keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    binary = task == BINARY
    output = tf_keras.layers.Dense(1, activation="sigmoid" if binary else None, name="output")(x)
    model = tf_keras.Model(inputs, output, name="mlbridge_mlp")
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy" if binary else "mse",
    )
    return model


def serving_module(
    model: tf_keras.Model,
    input_names: list[str],
    task: str,
    label_mean: float = 0.0,
    label_std: float = 1.0,
) -> tf.Module:
    """A module whose `serve` function is the SavedModel's `serving_default` signature.

    Inputs: one float32 [None] tensor per feature column, keyed by the column's name (TF
    Serving's Predict request names them that way). Outputs: `score` float32 [None] (the
    positive-class probability, or the value in label units) and, for binary classification,
    `label` int64 [None], the class at a 0.5 threshold.
    """
    binary = task == BINARY
    specs = [tf.TensorSpec(shape=[None], dtype=tf.float32, name=name) for name in input_names]
    mean = tf.constant(label_mean, dtype=tf.float32)
    std = tf.constant(label_std, dtype=tf.float32)

    @tf.function(input_signature=specs)
    def serve(*columns):
        x = tf.stack(columns, axis=1)
        out = tf.reshape(model(x, training=False), [-1])
        if binary:
            return {SCORE: out, LABEL: tf.cast(out >= 0.5, tf.int64)}
        return {SCORE: out * std + mean}

    module = tf.Module()
    module.model = model
    module.serve = serve
    return module


def save(module: tf.Module, path: str) -> None:
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})


def score_matrix(module: tf.Module, x: np.ndarray) -> np.ndarray:
    """The serving function's `score` on a [rows, features] matrix, as float64: the trainer's
    metrics measure the very graph it exports."""
    columns = [tf.constant(x[:, i]) for i in range(x.shape[1])]
    return module.serve(*columns)[SCORE].numpy().astype(np.float64)


def signature_io(path: str):
    """Load a SavedModel's serving signature: (callable, input names in order, output names)."""
    loaded = tf.saved_model.load(path)
    try:
        fn = loaded.signatures[SIGNATURE]
    except KeyError:
        raise KeyError(f"SavedModel at {path} has no {SIGNATURE!r} signature") from None
    _, kwargs = fn.structured_input_signature
    return loaded, fn, list(kwargs), list(fn.structured_outputs)


def predict_scores(fn, input_names: list[str], x: np.ndarray) -> np.ndarray:
    """Call a serving signature on a [rows, features] matrix; the `score` output as float64."""
    feed = {name: tf.constant(x[:, i]) for i, name in enumerate(input_names)}
    return fn(**feed)[SCORE].numpy().astype(np.float64)
