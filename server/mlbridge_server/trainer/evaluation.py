"""`mlbridge evaluate`: a model version's metrics on the labelled rows of a query, streamed."""

from __future__ import annotations

from pathlib import Path

from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from . import store
from .columns import BINARY, REGRESSION, Columns, find_column, is_numeric, parse_model_ref, type_name
from .metrics import metrics_for
from .source import ALL, PassCounts, QuerySource, batches

SCORE_BATCH = 4096


def evaluate(
    dsn: Dsn,
    query: str,
    label: str,
    model: str,
    model_base: Path,
    key: str | None = None,
) -> dict[str, float]:
    """Score every row of `query` with `model` (`name`, `name:3` or `name@label`) and measure
    the scores against the `label` column.

    The model's inputs are matched to the query's columns by name; other columns are ignored.
    Returns the task's metrics (binary: accuracy, auc, log_loss, positive_rate; regression:
    rmse, mae, r2) plus `rows` (scored) and `rows_skipped` (a NULL input or label). `key` is
    accepted for symmetry with `train`: every row counts here, none is held out.
    """
    del key
    ref = parse_model_ref(model)
    version, path = store.resolve(Path(model_base), ref, dsn)
    source = QuerySource(dsn, query)
    description = source.describe()
    names = tuple(n for n, _ in description)

    from . import model as net

    try:
        loaded, fn, inputs, outputs = net.signature_io(str(path))
    except Exception as exc:  # noqa: BLE001 - whatever TensorFlow raises for an unreadable model
        raise MlbridgeError(f"mlbridge: cannot load model {ref.name} version {version} from {path}: {exc}") from exc
    if net.SCORE not in outputs:
        raise MlbridgeError(
            f"mlbridge: model {ref.name} version {version} has no {net.SCORE!r} output "
            f"(it has {', '.join(outputs)}): only models the trainer made can be evaluated yet"
        )
    task = BINARY if net.LABEL in outputs else REGRESSION

    missing = [name for name in inputs if find_column(names, name) is None]
    if missing:
        raise MlbridgeError(
            f"mlbridge: model {ref.name} version {version} needs the column(s) {', '.join(missing)}, "
            f"which the query does not return (it returns {', '.join(names)})"
        )
    positions = []
    for name in inputs:
        pos = find_column(names, name)
        if not is_numeric(description[pos][1]):
            raise MlbridgeError(
                f"mlbridge: the column {names[pos]!r} is {type_name(description[pos][1])}: the model "
                "takes numbers; cast it in the query"
            )
        positions.append(pos)
    label_pos = find_column(names, label)
    if label_pos is None:
        raise MlbridgeError(
            f"mlbridge: the label column {label!r} is not among the query's columns ({', '.join(names)})"
        )
    if not is_numeric(description[label_pos][1]):
        raise MlbridgeError(
            f"mlbridge: the label column {names[label_pos]!r} is {type_name(description[label_pos][1])}: "
            "only numeric labels are supported yet"
        )
    columns = Columns(names=names, features=tuple(positions), label=label_pos, key=None)

    counts = PassCounts()
    measured = metrics_for(task)
    for x, y in batches(source, columns, ALL, SCORE_BATCH, counts):
        measured.update(y, net.predict_scores(fn, inputs, x))
    scored = counts.rows - counts.skipped
    if scored == 0:
        raise MlbridgeError(
            "mlbridge: the query returned no rows to score"
            if counts.rows == 0
            else f"mlbridge: all {counts.rows} rows have a NULL input or label: nothing to score"
        )
    del loaded  # kept alive until scoring is over: the signature needs its variables
    return {**measured.result(), "rows": float(scored), "rows_skipped": float(counts.skipped)}
