"""The three kinds of model the trainer fits, each on the same preprocessed rows:

- `linear`: one dense layer on the dense encoding (logistic, softmax or linear regression) with
  a little L2; on small tables it is often the model to beat.
- `mlp`: the neural network, two hidden ReLU layers with dropout.
- `gbt`: gradient-boosted trees from ydf on the tree encoding, the strongest on larger tables
  with interactions. Trees fit in memory: on a table too big to hold they fit on a sample of
  the training rows (split.sample_mask).

Keras here is tf_keras (Keras 2): MultiWorkerMirroredStrategy works with its `fit`, where
Keras 3's fails (keras issue 20585). Every fit stops early on the validation rows, and the
weights (or the number of trees) of the best validation loss are the ones kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras

from .columns import BINARY, MULTICLASS, REGRESSION
from .features import encode_label
from .metrics import headline, metrics_for
from .preprocess import Preprocessor
from .source import Block, concat

LINEAR, MLP, GBT = "linear", "mlp", "gbt"
MODEL_TYPES = (LINEAR, MLP, GBT)
ENCODE_ROWS = 65_536
SHUFFLE_ROWS = 1 << 16
LABEL = "__label__"  # never a feature name: those cannot start with _


@dataclass
class Task:
    kind: str  # REGRESSION, BINARY or MULTICLASS
    classes: list = field(default_factory=list)
    label_mean: float = 0.0
    label_std: float = 1.0

    @property
    def outputs(self) -> int:
        return len(self.classes) if self.kind == MULTICLASS else 1


@dataclass
class TrainingRows:
    """What the learners fit on: the training rows in memory (`train`) or as a pass over the
    query (`stream`, called once per epoch), the validation rows, and the rows trees fit on."""

    pre: Preprocessor
    task: Task
    valid: Block
    train: Block | None = None
    stream: Callable[[], Iterator[Block]] | None = None
    tree_rows: Block | None = None


@dataclass
class Fitted:
    kind: str
    model: object
    history: dict[str, list[float]] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0  # epochs run, or trees grown
    rounds: int = 0  # the epochs (trees per class) of the weights kept: what a refit runs
    predicted: np.ndarray | None = None  # on the validation rows, in label units

    @property
    def score(self) -> float:
        return self.validation.get("_headline", float("nan"))


def to_tensors(features: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    return {k: tf.constant(v) for k, v in features.items()}


def encode_dense(pre: Preprocessor, block: Block) -> np.ndarray:
    parts = []
    for start in range(0, len(block), ENCODE_ROWS):
        chunk = {k: v[start : start + ENCODE_ROWS] for k, v in block.features.items()}
        parts.append(pre.dense(to_tensors(chunk)).numpy())
    if not parts:
        return np.zeros((0, pre.dense_width()), dtype=np.float32)
    return np.concatenate(parts)


def encode_tree(pre: Preprocessor, block: Block) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for start in range(0, max(len(block), 1), ENCODE_ROWS):
        chunk = {k: v[start : start + ENCODE_ROWS] for k, v in block.features.items()}
        for name, value in pre.tree(to_tensors(chunk)).items():
            array = value.numpy()
            if array.dtype == object:
                array = np.array([b.decode("utf-8", "replace") for b in array], dtype=object)
            out.setdefault(name, []).append(array)
    return {k: np.concatenate(v) for k, v in out.items()}


def targets(task: Task, label: np.ndarray) -> np.ndarray:
    """The label as the networks fit it: standardised numbers, 0/1, or class indices."""
    encoded = encode_label(label, task.kind, task.classes)
    if task.kind == REGRESSION:
        return ((encoded - task.label_mean) / task.label_std).astype(np.float32).reshape(-1, 1)
    if task.kind == BINARY:
        return encoded.astype(np.float32).reshape(-1, 1)
    return encoded


def choose(fits: list[Fitted], task: Task, label: np.ndarray, *, draws: int = 200, seed: int = 0,
           errors: float = 2.0) -> Fitted:
    """The model to keep: the simplest (linear, then mlp, then gbt) whose validation score is
    within `errors` standard errors of the best's (Breiman's standard-error rule, made stricter
    than his one: about a one-sided 2% chance of trading a simpler model for one no better), the
    error of the difference estimated by resampling the validation rows. On a small table a few
    validation rows rank models by chance, and a simpler model as good within that chance
    generalises better; on a big one the errors are small and the best is kept."""
    ranked = sorted(fits, key=lambda f: (f.score if not np.isnan(f.score) else -np.inf,
                                         -f.validation.get("log_loss", f.validation.get("rmse", 0.0))))
    best = ranked[-1]
    if best.predicted is None:
        return best
    rng = np.random.default_rng(seed)
    n = len(label)
    picks = [rng.integers(0, n, size=min(n, 20_000)) for _ in range(draws)]
    best_scores = np.array([measure(task, label[i], best.predicted[i], headline_only=True)["_headline"] for i in picks])
    for fit in sorted(fits, key=lambda f: MODEL_TYPES.index(f.kind)):
        if fit is best or fit.predicted is None:
            return best if fit is best else fit
        gap = best_scores - np.array([measure(task, label[i], fit.predicted[i], headline_only=True)["_headline"]
                                     for i in picks])
        gap = gap[np.isfinite(gap)]
        if len(gap) and gap.mean() <= errors * gap.std():
            return fit
    return best


def accumulate(measured, task: Task, label: np.ndarray, predicted: np.ndarray) -> None:
    """Add labelled predictions (label units; probabilities for classes) to task metrics. A
    class the model never saw counts as wrong for multi-class; binary metrics leave it out."""
    encoded = encode_label(label, task.kind, task.classes)
    if task.kind == BINARY:
        keep = encoded >= 0
        measured.update(encoded[keep], predicted[keep])
    else:
        measured.update(encoded, predicted)


def measure(task: Task, label: np.ndarray, predicted: np.ndarray, *, headline_only: bool = False) -> dict[str, float]:
    """Validation or test metrics of predictions in label units (probabilities for classes);
    `headline_only` skips the costly ones that are not the headline (metrics.metrics_for)."""
    measured = metrics_for(task.kind, len(task.classes), headline_only=headline_only)
    accumulate(measured, task, label, predicted)
    result = measured.result()
    result["_headline"] = result[headline(task.kind)]
    return result


# -- networks ---------------------------------------------------------------------------------

def build_network(kind: str, width: int, task: Task, learning_rate: float | None = None,
                  rows: int = 1000) -> tf_keras.Model:
    """`linear`: one dense layer with the L2 penalty of scikit-learn's defaults (Ridge alpha=1,
    LogisticRegression C=1) spread over the `rows` it trains on; `mlp`: two hidden layers."""
    inputs = tf_keras.Input(shape=(width,), name="features")
    x = inputs
    if kind == MLP:
        for i, units in enumerate((64, 32)):
            x = tf_keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
            x = tf_keras.layers.Dropout(0.1, name=f"dropout_{i}")(x)
        rate = learning_rate or 1e-3
        l2 = None
    else:
        rate = learning_rate or 1e-2
        # Per row: the loss is a mean, so the summed penalty is divided by the rows.
        l2 = tf_keras.regularizers.L2((1.0 if task.kind == REGRESSION else 0.5) / max(rows, 1))
    activation = {BINARY: "sigmoid", MULTICLASS: "softmax"}.get(task.kind)
    output = tf_keras.layers.Dense(task.outputs, activation=activation, kernel_regularizer=l2, name="output")(x)
    model = tf_keras.Model(inputs, output, name=f"mlbridge_{kind}")
    loss = {BINARY: "binary_crossentropy", MULTICLASS: "sparse_categorical_crossentropy"}.get(task.kind, "mse")
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=rate), loss=loss)
    return model


def network_predict(model: tf_keras.Model, x: np.ndarray, task: Task) -> np.ndarray:
    out = model.predict(x, batch_size=8192, verbose=0) if len(x) else np.zeros((0, task.outputs))
    if task.kind == REGRESSION:
        return out.reshape(-1).astype(np.float64) * task.label_std + task.label_mean
    if task.kind == BINARY:
        return out.reshape(-1).astype(np.float64)
    return out.astype(np.float64)


def _stream_dataset(rows: TrainingRows, batch_size: int, seed: int) -> tf.data.Dataset:
    """Training batches of a pass over the query, shuffled within windows of SHUFFLE_ROWS rows
    (streamed rows come in the query's order), encoded by the preprocessing in the tf.data map."""
    pre, task = rows.pre, rows.task
    names = pre.names
    passes = [0]

    def batch(block: Block, idx: np.ndarray):
        return tuple(block.features[n][idx] for n in names), targets(task, block.label[idx])

    def generate():
        rng = np.random.default_rng([seed, passes[0]])
        passes[0] += 1
        pending: list[Block] = []
        held = 0
        for block in rows.stream():
            pending.append(block)
            held += len(block)
            if held < SHUFFLE_ROWS:
                continue
            window = concat(pending)
            order = rng.permutation(len(window))
            end = len(order) // batch_size * batch_size
            for start in range(0, end, batch_size):
                yield batch(window, order[start : start + batch_size])
            pending = [window.take(order[end:])] if end < len(order) else []
            held = len(order) - end
        if held:
            window = concat(pending)
            order = rng.permutation(len(window))
            for start in range(0, len(order), batch_size):
                yield batch(window, order[start : start + batch_size])

    spec_x = tuple(tf.TensorSpec([None], s.dtype) for s in pre.input_signature())
    spec_y = tf.TensorSpec([None] if task.kind == MULTICLASS else [None, 1],
                           tf.int64 if task.kind == MULTICLASS else tf.float32)
    ds = tf.data.Dataset.from_generator(generate, output_signature=(spec_x, spec_y))
    ds = ds.map(lambda xs, y: (pre.dense(dict(zip(names, xs))), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(2)


def fit_network(kind: str, rows: TrainingRows, *, epochs: int, batch_size: int, patience: int, seed: int,
                learning_rate: float | None = None, callbacks: list | None = None, early_stop: bool = True,
                strategy=None, steps_per_epoch: int | None = None) -> Fitted:
    """Fit a network. With a `strategy` (tf.distribute.MultiWorkerMirroredStrategy), each worker
    streams its own rows (`rows.stream`, its key range) and runs `steps_per_epoch` steps an
    epoch, the same on every worker, the rows repeating as needed; gradients are averaged
    across the workers."""
    started = time.monotonic()
    tf_keras.utils.set_random_seed(seed)
    task = rows.task
    n = len(rows.train) if rows.train is not None else max(len(rows.valid) * 8, 1)
    if strategy is not None:
        with strategy.scope():
            model = build_network(kind, rows.pre.dense_width(), task, learning_rate, n)
    else:
        model = build_network(kind, rows.pre.dense_width(), task, learning_rate, n)
    x_valid = encode_dense(rows.pre, rows.valid)
    y_valid = targets(task, rows.valid.label)
    if task.kind != REGRESSION:  # a class unseen in training has no output to be scored against
        known = encode_label(rows.valid.label, task.kind, task.classes) >= 0
        x_fit, y_fit = x_valid[known], y_valid[known]
    else:
        x_fit, y_fit = x_valid, y_valid
    every = list(callbacks or [])
    validation = (x_fit, y_fit) if early_stop else None
    if early_stop and kind == LINEAR:
        # A linear model is convex and regularised: it is fitted until its training loss
        # settles, as scikit-learn's are, not stopped by a few noisy validation rows.
        every[:0] = [tf_keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_delta=1e-4),
                     tf_keras.callbacks.EarlyStopping(monitor="loss", patience=8, min_delta=1e-4)]
    elif early_stop:
        every.insert(0, tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                         restore_best_weights=True))
    if rows.train is not None:
        history = model.fit(encode_dense(rows.pre, rows.train), targets(task, rows.train.label),
                            batch_size=batch_size, epochs=epochs, validation_data=validation,
                            shuffle=True, callbacks=every, verbose=0)
    else:
        dataset = _stream_dataset(rows, batch_size, seed)
        if strategy is not None:
            # Each worker reads its own key range: tf.data must not shard it again.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            dataset = dataset.repeat().with_options(options)
        history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            validation_data=validation, callbacks=every, verbose=0)
    if strategy is not None:  # a plain copy to export: the distributed one lives in the cluster
        local = build_network(kind, rows.pre.dense_width(), task, learning_rate, n)
        local.set_weights(model.get_weights())
        model = local
    predicted = network_predict(model, x_valid, task)
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    losses = hist.get("val_loss") or hist.get("loss") or [0.0]
    rounds = int(np.nanargmin(losses)) + 1 if early_stop and kind != LINEAR else len(hist.get("loss") or [0])
    return Fitted(kind, model, hist, measure(task, rows.valid.label, predicted), time.monotonic() - started,
                  len(hist.get("loss", [])), rounds, predicted)


def refit(fitted: Fitted, rows: TrainingRows, *, batch_size: int, seed: int,
          learning_rate: float | None = None) -> Fitted:
    """The chosen model fitted again, as long as it was when it was best, on the training and
    validation rows together (`rows.train` holds both): on a small table the rows that chose
    the model are too many to leave out of it. Its `validation` metrics are no longer honest;
    the caller keeps the first fit's."""
    if fitted.kind == GBT:
        return fit_trees(rows, seed=seed, num_trees=max(1, fitted.rounds), early_stop=False)
    return fit_network(fitted.kind, rows, epochs=max(1, fitted.rounds), batch_size=batch_size, patience=0,
                       seed=seed, learning_rate=learning_rate, early_stop=False)


# -- trees ------------------------------------------------------------------------------------

def fit_trees(rows: TrainingRows, *, seed: int, num_trees: int = 500, early_stop: bool = True) -> Fitted:
    import ydf

    ydf.verbose(0)
    started = time.monotonic()
    task = rows.task
    sample = rows.tree_rows if rows.tree_rows is not None else rows.train
    train = encode_tree(rows.pre, sample)
    valid = encode_tree(rows.pre, rows.valid)
    train[LABEL] = _tree_label(task, sample.label)
    valid_label = _tree_label(task, rows.valid.label)
    known = valid_label >= 0 if task.kind != REGRESSION else np.ones(len(valid_label), dtype=bool)
    valid_fit = {k: v[known] for k, v in valid.items()}
    valid_fit[LABEL] = valid_label[known]
    learner = ydf.GradientBoostedTreesLearner(
        label=LABEL,
        task=ydf.Task.REGRESSION if task.kind == REGRESSION else ydf.Task.CLASSIFICATION,
        num_trees=num_trees,
        random_seed=seed,
        # With `valid` given, ydf stops on it (and keeps the best number of trees); setting
        # validation_ratio to 0 as well would turn early stopping off.
        early_stopping="LOSS_INCREASE" if early_stop else "NONE",
        early_stopping_num_trees_look_ahead=30,
        **({} if early_stop else {"validation_ratio": 0.0}),
    )
    use_valid = early_stop and len(valid_fit[LABEL])
    model = learner.train(train, valid=valid_fit if use_valid else None, verbose=0)
    predicted = tree_predict(model, valid, task)
    history = {}
    try:
        logs = model.training_logs()
        history = {
            "iteration": [float(e.iteration) for e in logs],
            "loss": [float(e.training_evaluation.loss or np.nan) for e in logs],
            "val_loss": [float(e.evaluation.loss or np.nan) for e in logs],
        }
    except Exception:  # noqa: BLE001 - the curves are a nicety; the model is what matters
        pass
    per_round = len(task.classes) if task.kind == MULTICLASS else 1
    return Fitted(GBT, model, history, measure(task, rows.valid.label, predicted), time.monotonic() - started,
                  model.num_trees(), max(1, model.num_trees() // per_round), predicted)


def _tree_label(task: Task, label: np.ndarray) -> np.ndarray:
    encoded = encode_label(label, task.kind, task.classes)
    return encoded.astype(np.float64 if task.kind == REGRESSION else np.int64)


def class_columns(model, task: Task) -> list[int | None]:
    """For each of our classes, its column in ydf's predictions (None: absent from training)."""
    theirs = [int(c) for c in model.label_classes()]
    return [theirs.index(i) if i in theirs else None for i in range(len(task.classes))]


def tree_predict(model, features: dict[str, np.ndarray], task: Task) -> np.ndarray:
    if not len(next(iter(features.values()))):
        return np.zeros((0, task.outputs)) if task.kind == MULTICLASS else np.zeros(0)
    out = np.asarray(model.predict(features), dtype=np.float64)
    if task.kind == REGRESSION:
        return out.reshape(-1)
    columns = class_columns(model, task)
    if task.kind == BINARY:
        # ydf gives the probability of its second class; ours is class index 1.
        return out.reshape(-1) if columns[1] == 1 else 1.0 - out.reshape(-1)
    full = np.zeros((len(out), len(task.classes)))
    for ours, col in enumerate(columns):
        if col is not None:
            full[:, ours] = out[:, col]
    return full
