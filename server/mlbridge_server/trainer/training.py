"""`mlbridge train`: a SELECT's rows -> tf.data -> a Keras MLP -> a SavedModel version.

Steps: describe the query's columns (no rows read), summarise them with one SQL aggregate,
fit on the streamed training rows with early stopping on the streamed hold-out rows, score
the hold-out once more through the exported signature for the metrics, write the SavedModel
beside the other versions and record it in the catalog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from . import store
from .columns import BINARY, choose_task, classify_columns, validate_model_name
from .metrics import metrics_for
from .source import HOLDOUT, SHUFFLE_ROWS, TRAIN, PassCounts, QuerySource, Statistics, batches, dataset

MIN_ROWS = 10
SCORE_BATCH = 4096


@dataclass
class TrainResult:
    name: str
    version: int
    path: Path
    task: str  # "binary" or "regression"
    inputs: list[str]  # feature columns, in signature order
    metrics: dict[str, float] = field(default_factory=dict)  # on the hold-out rows
    rows_train: int = 0
    rows_holdout: int = 0
    rows_skipped: int = 0  # a NULL feature or label


def auto_batch_size(rows: int) -> int:
    """Small batches for small tables (enough steps per epoch), larger as rows grow."""
    if rows < 20_000:
        return 32
    if rows < 500_000:
        return 128
    if rows < 5_000_000:
        return 512
    return 1024


def _check_rows(source: QuerySource, stats: Statistics, label: str) -> None:
    if stats.rows >= MIN_ROWS:
        return
    total = source.count()
    if total == 0:
        raise MlbridgeError("mlbridge: the query returned no rows: nothing to train on; check its WHERE clause")
    if stats.rows == 0:
        raise MlbridgeError(
            f"mlbridge: all {total} rows of the query have a NULL feature or label {label!r}: "
            "nothing to train on; filter or fill the NULLs in the query"
        )
    raise MlbridgeError(
        f"mlbridge: only {stats.rows} usable rows (of {total}): training needs at least {MIN_ROWS}, "
        "some of them held out to measure the model"
    )


def _no_holdout(rows: int) -> MlbridgeError:
    return MlbridgeError(
        f"mlbridge: none of the {rows} usable rows fell in the hold-out, so the model cannot be "
        "measured; train on more rows"
    )


def train(
    dsn: Dsn,
    query: str,
    label: str,
    model: str,
    model_base: Path,
    key: str | None = None,
    epochs: int = 100,
    batch_size: int | None = None,
    progress: bool = True,
    seed: int = 0,
    *,
    patience: int = 8,
    learning_rate: float = 1e-3,
) -> TrainResult:
    """Train a new version of `model` on the rows of `query` and export it.

    `label` is the column to predict; every other column except the key (`key`, or `id` when
    present) is a numeric feature. Labels of only 0 and 1 make a binary classifier, other
    numbers a regression. `batch_size` None picks one from the row count. Raises MlbridgeError
    for anything the caller can fix.
    """
    name = validate_model_name(model)
    model_base = Path(model_base)
    if epochs < 1:
        raise MlbridgeError(f"mlbridge: epochs must be at least 1, not {epochs}")
    store.catalog_max_version(dsn, name)  # the catalog is there: better now than after training
    source = QuerySource(dsn, query)
    columns = classify_columns(source.describe(), label, key)
    stats = source.statistics(columns)
    _check_rows(source, stats, columns.label_name)
    task = choose_task(columns.label_name, stats.rows, stats.label_not_binary, stats.label_min, stats.label_max)
    batch_size = batch_size or auto_batch_size(stats.rows)
    if batch_size < 1:
        raise MlbridgeError(f"mlbridge: batch size must be at least 1, not {batch_size}")

    # TensorFlow loads only once the query has passed the checks above: errors come fast.
    import tf_keras

    from . import model as net
    from .progress import EpochProgress

    tf_keras.utils.set_random_seed(seed)
    if task == BINARY:
        label_mean, label_std = 0.0, 1.0
    else:
        label_mean = stats.label_mean
        label_std = math.sqrt(stats.label_variance) or 1.0

    features = columns.feature_names
    # A column with one value has variance 0; standardising by it would blow up any other
    # value served later. Dividing by 1 leaves it a harmless constant.
    variance = np.where(stats.variance > 0, stats.variance, 1.0)
    keras_model = net.build_model(len(features), stats.mean, variance, task, learning_rate=learning_rate)

    last_pass = PassCounts()
    passes = 0

    def training_batches():
        nonlocal last_pass, passes
        counts = PassCounts()
        rng = np.random.default_rng([seed, passes])
        passes += 1
        for x, y in batches(source, columns, TRAIN, batch_size, counts, shuffle_rows=SHUFFLE_ROWS, rng=rng):
            yield x, (y - label_mean) / label_std
        last_pass = counts

    def holdout_batches():
        for x, y in batches(source, columns, HOLDOUT, SCORE_BATCH, PassCounts()):
            yield x, (y - label_mean) / label_std

    def holdout_present():
        if last_pass.holdout == 0:
            raise _no_holdout(stats.rows)

    train_ds = dataset(training_batches, len(features))
    holdout_ds = dataset(holdout_batches, len(features))
    steps_guess = max(1, math.ceil(stats.rows * 0.8 / batch_size))
    bar = EpochProgress(f"training {name}", epochs, steps_guess, enabled=progress, before_validation=holdout_present)
    stop = tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    try:
        keras_model.fit(train_ds, validation_data=holdout_ds, epochs=epochs, callbacks=[stop, bar], verbose=0)
    finally:
        bar.close()

    module = net.serving_module(keras_model, features, task, label_mean, label_std)
    counts = PassCounts()
    measured = metrics_for(task)
    for x, y in batches(source, columns, HOLDOUT, SCORE_BATCH, counts):
        measured.update(y, net.score_matrix(module, x))
    if counts.holdout == 0:  # the rows changed since training began
        raise _no_holdout(counts.train)
    metrics = measured.result()

    model_dir = model_base / name
    staged = store.staging_dir(model_dir)
    try:
        net.save(module, str(staged))
        first = store.next_version(model_dir, store.catalog_max_version(dsn, name))
        version, path = store.publish(staged, model_dir, first)
    except BaseException:
        store.discard(staged)
        raise
    output_specs = store.tensor_specs([net.SCORE]) + (
        store.tensor_specs([net.LABEL], "int64") if task == BINARY else []
    )
    store.record_version(
        dsn,
        name=name,
        version=version,
        task=task,
        inputs=store.tensor_specs(features),
        outputs=output_specs,
        score_output=net.SCORE,
        label=columns.label_name,
        metrics={**metrics, "rows_train": counts.train, "rows_holdout": counts.holdout, "rows_skipped": counts.skipped},
        trained_on=source.query,
    )
    return TrainResult(
        name=name,
        version=version,
        path=path,
        task=task,
        inputs=features,
        metrics=metrics,
        rows_train=counts.train,
        rows_holdout=counts.holdout,
        rows_skipped=counts.skipped,
    )

