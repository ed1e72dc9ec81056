"""`mlbridge train`: a SELECT's rows -> preprocessing learned from them -> linear, network and
tree models -> the best on the validation rows, as a SavedModel version in the catalog.

Steps:
1. describe the query's columns (no rows read) and count its rows;
2. one pass over the rows: statistics of the training rows (means, vocabularies), the
   validation rows kept in memory, and the training and test rows too when the query has at
   most `memory_rows` rows; a bigger query is read again for each epoch (one pass, training
   rows only) and once at the end for its test rows, and trees fit on a sample of it;
3. fit each candidate (`model_type`: auto tries linear, mlp and gbt) with early stopping on
   the validation rows and keep the best by the task's headline metric (AUC, accuracy, R²),
   or a simpler one within one standard error of it (learners.choose);
4. measure the kept model on the test rows through the very graph it exports;
5. save it, load it back to check it, and publish it as the next version with its metrics.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from . import split, store
from .columns import REGRESSION, choose_task, classify_columns, validate_model_name
from .features import TrainingStats
from .metrics import headline
from .source import Block, QuerySource, concat

MIN_ROWS = 10
AUTO = "auto"
# Queries with at most this many rows are read once and trained on from memory; bigger ones
# stream from MySQL every epoch.
MEMORY_ROWS = 250_000
# Trees fit in memory: on a streamed query, on a sample of about this many training rows.
TREE_ROWS = 250_000
# Readers per pass unless told: one. Parallel readers by key range (`readers`) pay where the
# database or the network is the bottleneck; on a 2-core machine with the database beside the
# trainer the client's row conversion is, under one GIL, and 2 readers were 18% slower than 1
# (BENCHMARKS.md, make bench-dataset).
DEFAULT_READERS = 1
VERIFY_ROWS = 256
EPOCH_ROW_BUDGET = 10_000_000
# Epochs without a better validation loss before a network stops; fewer on big tables, whose
# epochs are long and whose validation loss is steady.
PATIENCE, PATIENCE_BIG, BIG_ROWS = 10, 4, 100_000
# Small tables: the chosen model is fitted again on training and validation rows together.
REFIT_ROWS = 100_000


@dataclass
class TrainResult:
    name: str
    version: int
    path: Path
    task: str  # "regression", "binary" or "multiclass"
    model_type: str  # "linear", "mlp" or "gbt"
    inputs: list[str]  # feature columns, in signature order
    metrics: dict[str, float] = field(default_factory=dict)  # on the test rows (validation without any)
    candidates: dict[str, dict] = field(default_factory=dict)  # validation metrics of each model tried
    rows_train: int = 0
    rows_validation: int = 0
    rows_test: int = 0
    classes: list = field(default_factory=list)

    @property
    def rows_holdout(self) -> int:
        return self.rows_validation + self.rows_test


def auto_batch_size(rows: int) -> int:
    """Small batches for small tables (enough steps per epoch), larger as rows grow."""
    if rows < 20_000:
        return 32
    if rows < 500_000:
        return 128
    if rows < 5_000_000:
        return 512
    return 1024


def auto_epochs(rows: int) -> int:
    """At most EPOCH_ROW_BUDGET rows seen in all, between 8 and 200 epochs: small tables need
    many passes, big ones few (early stopping usually ends sooner anyway)."""
    return int(min(200, max(8, EPOCH_ROW_BUDGET // max(rows, 1))))


def sorted_rows(blocks: list[Block]) -> Block:
    """Blocks as one, in the order of their rows' hashes: the same rows give the same order
    however the readers interleaved them, so a seed gives the same model."""
    block = concat([b for b in blocks if len(b)] or blocks[:1])
    return block.take(np.argsort(block.hashes, kind="stable"))


def _candidates(model_type: str) -> list[str]:
    from .learners import MODEL_TYPES

    if model_type == AUTO:
        return list(MODEL_TYPES)
    if model_type not in MODEL_TYPES:
        raise MlbridgeError(f"mlbridge: unknown model type {model_type!r}: use auto, {', '.join(MODEL_TYPES)}")
    return [model_type]


def _classes(task_kind: str, distinct: list) -> list:
    if task_kind == REGRESSION:
        return []
    return [int(v) if isinstance(v, float) and v == int(v) else v for v in distinct]


def train(
    dsn: Dsn,
    query: str,
    label: str,
    model: str,
    model_base: Path,
    key: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    seed: int = 0,
    *,
    task: str | None = None,
    model_type: str = AUTO,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    readers: int | None = None,
    patience: int | None = None,
    learning_rate: float | None = None,
    memory_rows: int = MEMORY_ROWS,
    tree_rows: int = TREE_ROWS,
    tensorboard: bool = True,
    refit: bool | None = None,
    workers: list[str] | None = None,
    worker_index: int = 0,
    hooks=None,
    trained_on: str | None = None,
    trained_by: str | None = None,
) -> TrainResult:
    """Train a new version of `model` on the rows of `query` and export it.

    `label` is the column to predict; every other column except the key (`key`, or `id` when
    present) is a feature. Numbers make a regression (0/1 a binary classifier), strings a
    classification; `task` overrides. `refit` (default: for queries read into memory, up to
    REFIT_ROWS rows) fits the chosen model again on the training and validation rows together,
    for as many epochs or trees as it had when it was best. Raises MlbridgeError for anything
    the caller can fix.

    `workers` (host:port of every worker, the same list on each) trains one network across
    machines with tf.distribute.MultiWorkerMirroredStrategy: run train on each worker with its
    `worker_index`. Every worker reads the whole query once to learn the same preprocessing,
    then each streams only its own slice of the integer key's range every epoch; worker 0
    exports and records the version, the others return version 0. `auto` means `mlp` there,
    and trees are not trained across machines.

    `hooks` (progress.Hooks) hears the progress and may cancel (the trainer worker's jobs);
    `trained_on` and `trained_by` are recorded in the catalog instead of the query read and the
    session's account (train_model reads the caller's rows from a copy, for the caller).
    """
    from .progress import Hooks

    hooks = hooks or Hooks()
    name = validate_model_name(model)
    model_base = Path(model_base)
    if epochs is not None and epochs < 1:
        raise MlbridgeError(f"mlbridge: epochs must be at least 1, not {epochs}")
    if batch_size is not None and batch_size < 1:
        raise MlbridgeError(f"mlbridge: batch size must be at least 1, not {batch_size}")
    split.check_fractions(validation_fraction, test_fraction)
    kinds = _candidates(model_type)
    distributed = bool(workers)
    if distributed:
        if not 0 <= worker_index < len(workers):
            raise MlbridgeError(f"mlbridge: worker index {worker_index} is not one of the {len(workers)} workers")
        if model_type == AUTO:
            kinds = ["mlp"]
        if "gbt" in kinds:
            raise MlbridgeError("mlbridge: trees train on one machine: use --model-type linear or mlp with --workers")
    store.catalog_max_version(dsn, name)  # the catalog is there: better now than after training
    source = QuerySource(dsn, query)
    columns = classify_columns(source.describe(), label, key)
    total = source.count()
    if total == 0:
        raise MlbridgeError("mlbridge: the query returned no rows: nothing to train on; check its WHERE clause")
    key_is_int = columns.key is not None and columns.sql[columns.key].integer
    readers = readers or DEFAULT_READERS
    ranges = source.key_ranges(columns, readers)
    if distributed and not key_is_int:
        raise MlbridgeError("mlbridge: training across workers splits the rows by the key's range: the key must be "
                            "an integer column (pass --key)")
    worker_ranges = source.key_ranges(columns, len(workers)) if distributed else None
    if distributed and worker_ranges is None:
        raise MlbridgeError(f"mlbridge: the key's range is too narrow to split between {len(workers)} workers")
    in_memory = total <= memory_rows and not distributed
    if refit and not in_memory:
        raise MlbridgeError(f"mlbridge: refit needs the rows in memory, and the query has {total} (more than "
                            f"{memory_rows}); leave refit to its default")
    train_share = 1 - validation_fraction - test_fraction
    tree_fraction = min(1.0, tree_rows / max(1.0, total * train_share))

    # -- the pass that learns the preprocessing ---------------------------------------------------
    stats = TrainingStats(columns.feature_names, list(columns.kinds),
                          [columns.sql[i].integer for i in columns.features], columns.label_name, columns.label_kind)
    kept: dict[str, list[Block]] = {"train": [], "valid": [], "test": [], "tree": []}
    hooks.report(phase="reading", rows=total)
    for block in source.blocks(columns, ranges=ranges, validation=validation_fraction, test=test_fraction):
        is_train = block.part == split.TRAIN
        stats.update(block.features, block.label, is_train)
        kept["valid"].append(block.take(block.part == split.VALIDATION))
        if in_memory:
            kept["train"].append(block.take(is_train))
            kept["test"].append(block.take(block.part == split.TEST))
        elif "gbt" in kinds:
            kept["tree"].append(block.take(is_train & split.sample_mask(block.hashes, tree_fraction)))
    stats.label.check()
    if stats.train_rows < MIN_ROWS:
        raise MlbridgeError(
            f"mlbridge: only {stats.train_rows} of the query's {total} rows fell in the training split: "
            f"training needs at least {MIN_ROWS}; train on more rows"
        )
    task_kind = choose_task(columns.label_name, columns.label_kind, stats.label.distinct(), task)
    valid = sorted_rows(kept["valid"])
    if not len(valid):
        raise MlbridgeError(
            f"mlbridge: none of the {total} rows fell in the validation split, which chooses the model and "
            "stops training: train on more rows or raise the validation fraction"
        )

    # TensorFlow loads only once the query has passed the checks above: errors come fast.
    from . import curves, export
    from .learners import GBT, Task, TrainingRows, choose, fit_network, fit_trees
    from .learners import refit as refit_model
    from .preprocess import Preprocessor
    from .progress import EpochProgress, HookCallback, progress_mode, say

    strategy = None
    if distributed:
        # Before any TensorFlow op runs: the collectives are set up with the eager context.
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": worker_index}})
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()

    moments = stats.label.moments
    the_task = Task(
        kind=task_kind,
        classes=_classes(task_kind, stats.label.distinct()),
        label_mean=moments.mean if task_kind == REGRESSION else 0.0,
        label_std=moments.std if task_kind == REGRESSION else 1.0,
    )
    specs = stats.specs()
    pre = Preprocessor(specs)
    train_rows = sorted_rows(kept["train"]) if in_memory else None
    kept["train"] = []

    def stream():
        if distributed:
            blocks = source.range_blocks(columns, worker_ranges[worker_index], first=worker_index == 0,
                                         validation=validation_fraction, test=test_fraction)
        else:
            blocks = source.blocks(columns, ranges=ranges, validation=validation_fraction, test=test_fraction)
        for block in blocks:
            rows = block.take(block.part == split.TRAIN)
            if len(rows):
                yield rows

    rows = TrainingRows(pre, the_task, valid, train=train_rows, stream=None if in_memory else stream,
                        tree_rows=sorted_rows(kept["tree"]) if kept["tree"] else None)
    batch_size = batch_size or auto_batch_size(stats.train_rows)
    epochs = epochs or auto_epochs(stats.train_rows)
    patience = patience or (PATIENCE if stats.train_rows < BIG_ROWS else PATIENCE_BIG)
    mode = progress_mode(progress)
    steps = None
    if distributed:  # every worker runs as many steps an epoch as the smallest slice gives
        counts = [source.range_count(columns, r, first=i == 0) for i, r in enumerate(worker_ranges)]
        steps = max(1, int(min(counts) * train_share) // batch_size)
        say(mode, f"{name}: worker {worker_index} of {len(workers)} reads keys {worker_ranges[worker_index]}, "
                  f"{steps} steps an epoch")
    chief = worker_index == 0
    model_dir = model_base / name
    staged = store.staging_dir(model_dir) if chief else Path(export.temp_dir())
    work = export.temp_dir()
    try:
        fits = []
        for kind in kinds:
            hooks.check()
            hooks.report(phase="fitting", model_type=kind)
            say(mode, f"{name}: fitting {kind} on {stats.train_rows} rows"
                      f"{'' if in_memory else ' (streamed from MySQL)'}")
            if kind == GBT:
                fitted = fit_trees(rows, seed=seed)
            else:
                callbacks = [EpochProgress(f"{name} {kind}", epochs, math.ceil(stats.train_rows / batch_size), mode=mode),
                             HookCallback(hooks, kind, epochs)]
                if tensorboard:
                    import tf_keras

                    callbacks.append(tf_keras.callbacks.TensorBoard(
                        log_dir=str(staged / "training" / "tensorboard" / kind), write_graph=False, profile_batch=0))
                try:
                    fitted = fit_network(kind, rows, epochs=epochs, batch_size=batch_size, patience=patience, seed=seed,
                                         learning_rate=learning_rate, callbacks=callbacks, strategy=strategy,
                                         steps_per_epoch=steps)
                finally:
                    callbacks[0].close()
            say(mode, f"{name}: {kind}: validation {headline(task_kind)} {fitted.score:.4f} "
                      f"({fitted.epochs} {'trees' if kind == GBT else 'epochs'}, {fitted.seconds:.1f} s)")
            fits.append(fitted)
        hooks.check()
        best = choose(fits, the_task, valid.label, seed=seed)
        if not chief:
            store.discard(staged)
            say(mode, f"{name}: worker {worker_index} done; worker 0 publishes the version")
            return TrainResult(name=name, version=0, path=None, task=task_kind, model_type=best.kind,
                               inputs=pre.names, rows_train=stats.train_rows, rows_validation=len(valid))
        final = best
        if refit is None:
            refit = in_memory and stats.train_rows + len(valid) <= REFIT_ROWS
        if refit:
            say(mode, f"{name}: fitting {best.kind} again on the training and validation rows ({best.rounds} "
                      f"{'trees' if best.kind == GBT else 'epochs'})")
            together = TrainingRows(pre, the_task, valid, train=concat([train_rows, valid]))
            final = refit_model(best, together, batch_size=batch_size, seed=seed, learning_rate=learning_rate)

        hooks.check()
        hooks.report(phase="measuring", model_type=best.kind)
        module = export.serving_module(pre, final, the_task, temp_dir=work)
        test_metrics, test_rows = {}, 0
        if test_fraction > 0:
            blocks = [sorted_rows(kept["test"])] if in_memory else (
                b.take(b.part == split.TEST)
                for b in source.blocks(columns, ranges=ranges, validation=validation_fraction, test=test_fraction))
            test_metrics, test_rows = measure_blocks(
                lambda features: export.predict(module, features, pre.names), the_task, blocks)
        metrics = test_metrics or {k: v for k, v in best.validation.items() if not k.startswith("_")}

        metadata = {
            "task": task_kind,
            "model_type": best.kind,
            "label": columns.label_name,
            "classes": the_task.classes,
            "features": [s.to_json() for s in specs],
            "split": {"key": columns.key_name, "validation": validation_fraction, "test": test_fraction},
            "seed": seed,
            "refit": bool(refit),
        }
        export.save(module, staged, metadata)
        sample = {k: v[:VERIFY_ROWS] for k, v in valid.features.items()}
        export.verify(staged, module, sample, pre.names)
        curves.plot(fits, best.kind, staged / "training" / "learning_curves.png")
        hooks.check()
        hooks.report(phase="publishing", model_type=best.kind)
        first = store.next_version(model_dir, store.catalog_max_version(dsn, name))
        version, path = store.publish(staged, model_dir, first)
    except BaseException:
        store.discard(staged)
        raise
    finally:
        store.discard(work)

    candidates = {
        f.kind: {**{k: v for k, v in f.validation.items() if not k.startswith("_")}, "seconds": round(f.seconds, 2),
                 "epochs": f.epochs}
        for f in fits
    }
    counts = {"rows_train": stats.train_rows, "rows_validation": len(valid), "rows_test": test_rows}
    store.record_version(
        dsn,
        name=name,
        version=version,
        task=task_kind,
        model_type=best.kind,
        inputs=[{"name": s.name, "dtype": s.dtype, "shape": [-1], "missing": True, "kind": s.kind} for s in specs],
        outputs=export.output_specs(the_task),
        score_output=export.SCORE,
        label=columns.label_name,
        metrics={**metrics, **counts, "on": "test" if test_metrics else "validation",
                 "validation": {k: v for k, v in best.validation.items() if not k.startswith("_")},
                 "candidates": candidates},
        trained_on=trained_on or source.query,
        trained_by=trained_by,
    )
    say(mode, f"{name}: kept {best.kind} as version {version}")
    return TrainResult(
        name=name, version=version, path=path, task=task_kind, model_type=best.kind, inputs=pre.names,
        metrics=metrics, candidates=candidates, rows_train=stats.train_rows, rows_validation=len(valid),
        rows_test=test_rows, classes=the_task.classes,
    )


def measure_blocks(predict, task, blocks) -> tuple[dict[str, float], int]:
    """The task's metrics over blocks of labelled rows; `predict(features)` gives a serving
    signature's outputs (the exported graph, or the SavedModel loaded back)."""
    from . import export
    from .learners import accumulate
    from .metrics import metrics_for

    measured = metrics_for(task.kind, len(task.classes))
    rows = 0
    for block in blocks:
        for start in range(0, len(block), 65_536):
            part = block.take(np.arange(start, min(start + 65_536, len(block))))
            accumulate(measured, task, part.label, export.probabilities(predict(part.features), task))
            rows += len(part)
    return (measured.result() if rows else {}), rows

