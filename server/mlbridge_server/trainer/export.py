"""The SavedModel a version is: preprocessing, the fitted model and its outputs in one
`serving_default` signature, the same for every kind of model, plus `mlbridge.json` (what the
trainer knows of it) in `assets.extra/`, where TensorFlow Serving leaves files alone.

Signature:
- inputs: one [None] tensor per feature column, named after it; float32 for numbers, string for
  text, ENUM, SET and dates (ISO-8601). NaN or "" is a NULL, imputed inside the model.
- outputs: `score` float32 [None]: the value for a regression, the positive class's
  probability for binary classification, the top class's probability for multi-class.
  `label` [None]: the predicted class (int64 for a 0/1 label, else string). Multi-class adds
  `classes` string [None, K] and `scores` float32 [None, K], in the order of TF Serving's Classify
  API (`servo_api` in ydf's export), so `output` in SQL holds the class and every probability.

Trees come from ydf through `to_tensorflow_function`, which embeds its inference op in this very
graph; such a model needs `import ydf_tf` wherever it loads (the model server's loader does
it). Every export is loaded back from disk and run on rows before it is published: a model the
server could not load or that answers differently is refused here, never at serving time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from mlbridge.errors import MlbridgeError
from mlbridge.serving_constants import DEFAULT_SIGNATURE

from .columns import BINARY, MULTICLASS, REGRESSION
from .learners import GBT, Fitted, Task, class_columns, to_tensors
from .preprocess import Preprocessor

SIGNATURE = DEFAULT_SIGNATURE
SCORE, LABEL, CLASSES, SCORES = "score", "label", "classes", "scores"
METADATA = "assets.extra/mlbridge.json"


def numeric_classes(task: Task) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in task.classes)


def class_names(task: Task) -> list[str]:
    return [str(int(c)) if isinstance(c, float) and c == int(c) else str(c) for c in task.classes]


def serving_module(pre: Preprocessor, fitted: Fitted, task: Task, temp_dir: str | None = None) -> tf.Module:
    module = tf.Module()
    module.pre = pre
    if fitted.kind == GBT:
        module.trees = fitted.model.to_tensorflow_function(temp_dir=temp_dir)
        if task.kind == MULTICLASS:
            # ydf's columns to ours; a class absent from the tree sample points at a zero column.
            cols = class_columns(fitted.model, task)
            width = len(fitted.model.label_classes())
            module.gather = tf.constant([width if c is None else c for c in cols], dtype=tf.int32)
        flip = task.kind == BINARY and class_columns(fitted.model, task)[1] != 1
    else:
        module.network = fitted.model
        flip = False
    names = pre.names
    classes = tf.constant(class_names(task) or [""], dtype=tf.string)
    numeric_label = task.kind == BINARY and numeric_classes(task)
    mean = tf.constant(task.label_mean, tf.float32)
    std = tf.constant(task.label_std, tf.float32)

    def raw(inputs):
        if fitted.kind == GBT:
            out = tf.cast(module.trees(pre.tree(inputs)), tf.float32)
            if task.kind == MULTICLASS:
                out = tf.gather(tf.concat([out, tf.zeros_like(out[:, :1])], axis=1), module.gather, axis=1)
            elif flip:
                out = 1.0 - out
            return out
        out = module.network(pre.dense(inputs), training=False)
        if task.kind == REGRESSION:
            out = out * std + mean
        return out

    @tf.function(input_signature=pre.input_signature())
    def serve(*columns):
        out = raw(dict(zip(names, columns)))
        if task.kind == REGRESSION:
            return {SCORE: tf.reshape(out, [-1])}
        if task.kind == BINARY:
            p = tf.reshape(out, [-1])
            positive = p >= 0.5
            label = tf.cast(positive, tf.int64) if numeric_label else tf.gather(classes, tf.cast(positive, tf.int32))
            return {SCORE: p, LABEL: label}
        best = tf.argmax(out, axis=1, output_type=tf.int32)
        return {
            SCORE: tf.reduce_max(out, axis=1),
            LABEL: tf.gather(classes, best),
            CLASSES: tf.tile(classes[None, :], [tf.shape(out)[0], 1]),
            SCORES: out,
        }

    module.serve = serve
    return module


def output_specs(task: Task) -> list[dict]:
    specs = [{"name": SCORE, "dtype": "float32", "shape": [-1]}]
    if task.kind == BINARY:
        specs.append({"name": LABEL, "dtype": "int64" if numeric_classes(task) else "string", "shape": [-1]})
    elif task.kind == MULTICLASS:
        k = len(task.classes)
        specs += [
            {"name": LABEL, "dtype": "string", "shape": [-1]},
            {"name": CLASSES, "dtype": "string", "shape": [-1, k]},
            {"name": SCORES, "dtype": "float32", "shape": [-1, k]},
        ]
    return specs


def predict(module, features: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    out = module.serve(*[tf.constant(features[n]) for n in names])
    return {k: v.numpy() for k, v in out.items()}


def probabilities(outputs: dict[str, np.ndarray], task: Task) -> np.ndarray:
    """What the metrics take: values, the positive class's probability, or [rows, K]."""
    if task.kind == MULTICLASS:
        return outputs[SCORES].astype(np.float64)
    return outputs[SCORE].astype(np.float64)


def save(module: tf.Module, path: Path, metadata: dict) -> None:
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    target = path / METADATA
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(metadata, indent=1, default=str))


def read_metadata(path: Path) -> dict | None:
    target = Path(path) / METADATA
    if not target.is_file():
        return None
    return json.loads(target.read_text())


def load(path: Path):
    """A SavedModel's serving signature, loaded as the model server loads it (ydf_tf first)."""
    import ydf_tf  # noqa: F401 - registers the tree inference ops

    loaded = tf.saved_model.load(str(path))
    return loaded, loaded.signatures[SIGNATURE]


def verify(path: Path, module: tf.Module, sample: dict[str, np.ndarray], names: list[str]) -> None:
    """Load the export back and check it answers as the model in memory does."""
    try:
        _loaded, fn = load(path)
        got = fn(**to_tensors(sample))
    except Exception as exc:  # noqa: BLE001 - whatever TensorFlow raises for an unloadable model
        raise MlbridgeError(f"mlbridge: the exported model does not load back, so it was not published: {exc}") from exc
    want = predict(module, sample, names)
    for name, expected in want.items():
        found = got[name].numpy()
        if expected.dtype.kind == "f":
            same = np.allclose(found, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
        else:
            same = np.array_equal(found, expected)
        if not same:
            raise MlbridgeError(
                f"mlbridge: the exported model answers differently from the trained one on output {name!r}; "
                "it was not published"
            )


def temp_dir() -> str:
    return tempfile.mkdtemp(prefix="mlbridge-export-")

