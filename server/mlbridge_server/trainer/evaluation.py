"""`mlbridge evaluate`: a model version's metrics on the labelled rows of any query, streamed.

The model's inputs are matched to the query's columns by name (other columns are ignored), and
the rows are converted as training and the bridge convert them. With `key`, only the rows the
trainer's split put in the test set are scored (the split rule of split.py, with the fractions
the version was trained with): the honest figure for a model evaluated on the table it was
trained on. Without it, every row counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from . import split, store
from .columns import BINARY, CATEGORY, NUMBER, REGRESSION, Columns, find_column, parse_model_ref
from .features import label_nulls
from .source import QuerySource


def _task_of(metadata: dict | None, outputs: list[str]):
    from .learners import Task

    if metadata:
        return Task(metadata["task"], list(metadata.get("classes") or []))
    # A version from before the trainer wrote mlbridge.json: score and label (0/1) or score alone.
    return Task(BINARY, [0, 1]) if "label" in outputs else Task(REGRESSION)


@dataclass
class _Prepared:
    """A model version loaded, and the query's labelled rows as blocks in the model's inputs."""

    name: str
    version: int
    predict: Callable[[dict], dict]
    task: object
    blocks: Iterator
    inputs: list[str]
    loaded: object  # kept alive while predicting: the signature needs its variables


def _prepare(dsn: Dsn, query: str, label: str, model: str, model_base: Path, key: str | None) -> _Prepared:
    ref = parse_model_ref(model)
    version, path = store.resolve(Path(model_base), ref, dsn)
    source = QuerySource(dsn, query)
    description = source.describe()
    names = tuple(c.name for c in description)

    from . import export
    from .learners import to_tensors

    try:
        loaded, fn = export.load(path)
    except Exception as exc:  # noqa: BLE001 - whatever TensorFlow raises for an unreadable model
        raise MlbridgeError(f"mlbridge: cannot load model {ref.name} version {version} from {path}: {exc}") from exc
    _, kwargs = fn.structured_input_signature
    inputs = list(kwargs)
    outputs = list(fn.structured_outputs)
    if export.SCORE not in outputs:
        raise MlbridgeError(
            f"mlbridge: model {ref.name} version {version} has no {export.SCORE!r} output "
            f"(it has {', '.join(outputs)}): only models the trainer made can be evaluated"
        )
    metadata = export.read_metadata(path)
    task = _task_of(metadata, outputs)

    missing = [name for name in inputs if find_column(names, name) is None]
    if missing:
        raise MlbridgeError(
            f"mlbridge: model {ref.name} version {version} needs the column(s) {', '.join(missing)}, "
            f"which the query does not return (it returns {', '.join(names)})"
        )
    label_pos = find_column(names, label)
    if label_pos is None:
        raise MlbridgeError(
            f"mlbridge: the label column {label!r} is not among the query's columns ({', '.join(names)})"
        )
    key_pos = None
    if key is not None:
        key_pos = find_column(names, key)
        if key_pos is None:
            raise MlbridgeError(f"mlbridge: the key column {key!r} is not among the query's columns ({', '.join(names)})")
    positions = [find_column(names, name) for name in inputs]
    kinds = [NUMBER if kwargs[name].dtype.is_floating else CATEGORY for name in inputs]
    classes_are_text = any(isinstance(c, str) for c in task.classes)
    columns = Columns(names=names, features=tuple(positions), label=label_pos, key=key_pos, kinds=tuple(kinds),
                      label_kind=CATEGORY if classes_are_text else NUMBER, sql=tuple(description))

    fractions = (metadata or {}).get("split") or {"validation": 0.1, "test": 0.1}
    blocks = source.blocks(columns, validation=fractions["validation"], test=fractions["test"])
    if key is not None:
        if not fractions["test"]:
            raise MlbridgeError(f"mlbridge: model {ref.name} version {version} was trained without test rows, so "
                                "--key has none to pick; evaluate it on rows it was not trained on instead")
        blocks = (b.take(b.part == split.TEST) for b in blocks)
    blocks = (_checked(b, label, task) for b in blocks)

    def predict(features):
        return {k: v.numpy() for k, v in fn(**to_tensors(features)).items()}

    return _Prepared(ref.name, version, predict, task, blocks, inputs, loaded)


def evaluate(
    dsn: Dsn,
    query: str,
    label: str,
    model: str,
    model_base: Path,
    key: str | None = None,
) -> dict[str, float]:
    """Score the rows of `query` with `model` (`name`, `name:3` or `name@label`) and measure the
    scores against the `label` column: the task's metrics plus `rows` (scored)."""
    from .training import measure_blocks

    prepared = _prepare(dsn, query, label, model, model_base, key)
    measured, rows = measure_blocks(prepared.predict, prepared.task, prepared.blocks)
    if rows == 0:
        raise MlbridgeError("mlbridge: the query returned no rows to score" if key is None else
                            "mlbridge: none of the query's rows fell in the test split")
    return {**measured, "rows": float(rows)}


def explain(
    dsn: Dsn,
    query: str,
    label: str,
    model: str,
    model_base: Path,
    key: str | None = None,
    *,
    seed: int = 0,
    repeats: int = 3,
    max_rows: int = 100_000,
    hooks=None,
) -> dict:
    """Permutation importance of each of the model's inputs on the labelled rows of `query`
    (at most `max_rows` of them, a sample by the split's row hash, which is the key's where
    there is one): {"importance": [{"column", "importance", "std"}, ...], "baseline", "metric",
    "rows"}, most important first."""
    from .importance import permutation_importance
    from .metrics import headline
    from .source import concat

    prepared = _prepare(dsn, query, label, model, model_base, key)
    kept: list = []
    for block in prepared.blocks:
        kept.append(block)
        held = sum(len(b) for b in kept)
        if held > 4 * max_rows:  # thin what is held as the rows keep coming
            kept = [_sample(concat(kept), 2 * max_rows / held)]
    if hooks is not None:
        hooks.check()
    rows = concat(kept) if kept else None
    if rows is None or not len(rows):
        raise MlbridgeError("mlbridge: the query returned no rows to explain" if key is None else
                            "mlbridge: none of the query's rows fell in the test split")
    if len(rows) > max_rows:
        rows = _sample(rows, max_rows / len(rows))
    found = permutation_importance(prepared.predict, rows.features, rows.label, prepared.task,
                                   repeats=repeats, seed=seed)
    return {"importance": [{k: row[k] for k in ("column", "importance", "std")} for row in found],
            "baseline": found[0]["baseline"] if found else None, "metric": headline(prepared.task.kind),
            "rows": len(rows)}


def _sample(rows, fraction: float):
    if fraction >= 1:
        return rows
    return rows.take(split.sample_mask(rows.hashes, fraction))


def _checked(block, label: str, task):
    nulls = label_nulls(block.label)
    if nulls:
        raise MlbridgeError(f"mlbridge: the label column {label!r} is NULL in {nulls} rows; filter them out")
    return block
