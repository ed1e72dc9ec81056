"""`make quality`: the trainer's model quality beside scikit-learn baselines, on real data sets.

    python bench/quality.py                          all six sets, 5x2 folds, 1,000,000 synthetic rows
    python bench/quality.py --quick                  a smoke: 1x2 folds, 20,000 synthetic rows
    python bench/quality.py --sets wine,wage --model-type gbt
    python bench/quality.py --sets penguins,synthetic --repeats 1 --synthetic-rows 2000 --epochs 3
                                                     the smoke that `make test` runs

The sets (bench/quality_data.py) are ones Python packages ship, plus one generated with a fixed
seed; nothing is downloaded. Each is loaded into its own table `quality.<name>` on a private
database server started for the run (or kept under .run/quality with --keep-db).

The protocol is paired 5x2-fold cross-validation. Repetition r (0..4) splits every table in two
halves, stored in the table as column fold<r> (a permutation seeded by r). For each r and half h,
every model trains on the rows with fold<r> = h and is scored on the rows with fold<r> = 1-h:

- mlbridge, through the trainer's Python API: `train(dsn, query, label, model, model_base,
  key="id", model_type=..., test_fraction=0.0, seed=r, progress=False)` on
  `SELECT id, <features>, <label> FROM quality.<name> WHERE fold<r> = h`, then `evaluate` of that
  version on the same SELECT with the other half;
- scikit-learn's HistGradientBoosting (random_state=r, text columns as pandas categories) and a
  linear model (LogisticRegression or Ridge, with imputation, scaling and one-hot encoding), on
  the same rows read back from the same table (one read, split by the same fold column).

The score is ROC AUC for binary labels, accuracy for classes, R² for regression, in points (x100).
Per set the report gives each side's mean ± std over the folds, the model types auto picked, the
gap mlbridge - best baseline (by mean), the paired per-fold differences, seconds per mlbridge fit,
and a verdict: `ok` when the gap is at least -2 points, `SHORT` below, `FAILED` when a fold of
mlbridge raised. The exit status is 0 only when every set is `ok`. Progress goes to stderr, one
line per fold; all fold results go to --json, and one JSON summary line is printed last.

`--fake-mlbridge` is a self-test of this harness only: it puts a small scikit-learn model (numeric
columns only, linear) behind the same train/evaluate contract, reading the same queries from
MySQL, so tables, folds, baselines and the report can be checked without the trainer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))  # quality_data beside this file, however this file is run
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import quality_data as data  # noqa: E402 - bench/quality_data.py

import mlbridge  # noqa: E402,F401 - loads mysql-connector's C extension first
from mlbridge.config import Dsn  # noqa: E402
from mlbridge.db import connect  # noqa: E402
from mlbridge.db.install import install  # noqa: E402
from mlbridge.db.local import LocalServer  # noqa: E402

RUN_DIR = REPO / ".run" / "quality"
MODEL_TYPES = ("auto", "linear", "mlp", "gbt")
TOLERANCE = 2.0  # points: mlbridge is `ok` when its mean is at most this far below the best baseline's
BASELINES = ("hgb", "linear")
QUICK_ROWS = 20_000


def log(text: str) -> None:
    print(f"quality: {text}", file=sys.stderr, flush=True)


# -- the database and the tables ---------------------------------------------------------------

def start_database(stack: contextlib.ExitStack, keep: bool) -> tuple[Dsn, Path]:
    """A private server and a model base: under a temporary folder, stopped and removed at the
    end; with `keep`, under .run/quality and left running."""
    if keep:
        root = RUN_DIR
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbridge-quality-")))
    server = LocalServer(root / "db")
    dsn = server.start()
    if not keep:
        stack.callback(server.stop)
    install(dsn)
    return dsn, root / "models"


def load_tables(dsn: Dsn, sets: list[data.DataSet], repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mlbridge-quality-load-") as folder:
        folder = os.path.realpath(folder)
        conn = connect(dsn, allow_local_infile_in_path=folder)
        try:
            cur = conn.cursor()
            cur.execute("SET GLOBAL local_infile = 1")  # our own server; MySQL 8 starts with it OFF
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {data.SCHEMA}")
            cur.close()
            for ds in sets:
                started = time.perf_counter()
                data.write_table(conn, ds, repeats, Path(folder))
                log(f"loaded {ds.table}: {len(ds.frame):,} rows in {time.perf_counter() - started:.1f} s")
        finally:
            conn.close()


def read_tables(dsn: Dsn, sets: list[data.DataSet], repeats: int) -> dict[str, pd.DataFrame]:
    conn = connect(dsn)
    try:
        return {ds.name: data.read_table(conn, ds, repeats) for ds in sets}
    finally:
        conn.close()


def fold_query(ds: data.DataSet, r: int, h: int) -> str:
    columns = ", ".join(f"`{c}`" for c in ["id", *ds.features, ds.label])
    return f"SELECT {columns} FROM {ds.table} WHERE {data.fold_name(r)} = {h}"


# -- the mlbridge side -----------------------------------------------------------------------------

def mlbridge_fold(api, dsn: Dsn, model_base: Path, ds: data.DataSet, r: int, h: int, model_type: str,
                  epochs: int | None = None) -> dict:
    """Train on half h of repetition r, evaluate on the other half, through the trainer's API;
    `epochs`: at most that many per network (None: the trainer's own choice).
    A failure is recorded (not raised), so one set cannot end a long run."""
    name = f"quality_{ds.name}" if model_type == "auto" else f"quality_{ds.name}_{model_type}"
    try:
        started = time.perf_counter()
        result = api.train(dsn, fold_query(ds, r, h), ds.label, name, model_base, key="id", model_type=model_type,
                           epochs=epochs, test_fraction=0.0, seed=r, progress=False)
        fit_s = time.perf_counter() - started
        metrics = api.evaluate(dsn, fold_query(ds, r, 1 - h), ds.label, f"{name}:{result.version}", model_base)
    except Exception as exc:  # noqa: BLE001 - recorded with the fold, reported as FAILED
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"score": 100 * float(metrics[ds.metric]), "model_type": result.model_type, "version": result.version,
            "fit_s": round(fit_s, 3), "metrics": _plain(metrics), "train_metrics": _plain(result.metrics),
            "candidates": _plain(getattr(result, "candidates", {}))}


class FakeTrainer:
    """Harness self-test (--fake-mlbridge): the train/evaluate contract of mlbridge_server.trainer,
    kept by a scikit-learn linear model on the numeric columns only. It runs the same SELECTs
    against MySQL, so the queries and fold columns are exercised; its scores say nothing about
    mlbridge."""

    def __init__(self) -> None:
        self.models: dict[str, object] = {}

    @staticmethod
    def _read(dsn: Dsn, query: str) -> pd.DataFrame:
        conn = connect(dsn)
        try:
            cur = conn.cursor()
            cur.execute(query)
            return pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])
        finally:
            conn.close()

    @staticmethod
    def _numeric(frame: pd.DataFrame, key: str, label: str) -> list[str]:
        def is_number(column: pd.Series) -> bool:
            return all(v is None or isinstance(v, int | float) for v in column.dropna().head(1000).tolist())

        return [c for c in frame.columns if c not in (key, label) and is_number(frame[c])]

    def train(self, dsn, query, label, model, model_base, key="id", model_type="auto", epochs=None,
              test_fraction=0.0, seed=0, progress=False):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        del model_base, model_type, epochs, test_fraction, seed, progress
        frame = self._read(dsn, query)
        columns = self._numeric(frame, key, label)
        y = frame[label]
        classes = isinstance(y.iloc[0], str) or set(y.unique()) <= {0, 1}
        estimator = LogisticRegression(max_iter=5000) if classes else Ridge()
        fitted = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), estimator)
        fitted.fit(frame[columns].astype("float64"), y)
        version = sum(1 for ref in self.models if ref.startswith(f"{model}:")) + 1
        self.models[f"{model}:{version}"] = (fitted, columns)
        return SimpleNamespace(model_type="fake", version=version, metrics={}, candidates={})

    def evaluate(self, dsn, query, label, model, model_base, key=None):
        from sklearn import metrics as m

        del model_base, key
        fitted, columns = self.models[model]
        frame = self._read(dsn, query)
        x, y = frame[columns].astype("float64"), frame[label]
        found = {"rows": float(len(frame))}
        if not hasattr(fitted, "predict_proba"):
            score = fitted.predict(x)
            return found | {"r2": m.r2_score(y, score), "rmse": m.root_mean_squared_error(y, score),
                            "mae": m.mean_absolute_error(y, score)}
        proba = fitted.predict_proba(x)
        found |= {"accuracy": m.accuracy_score(y, fitted.predict(x)), "log_loss": m.log_loss(y, proba,
                                                                                          labels=fitted.classes_)}
        if len(fitted.classes_) == 2:
            found["auc"] = m.roc_auc_score(y, proba[:, 1])
        return found


def trainer_api(fake: bool):
    if fake:
        return FakeTrainer()
    import mlbridge_server.trainer as api

    return api


# -- the baselines ---------------------------------------------------------------------------------

def hgb(ds: data.DataSet, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kind = HistGradientBoostingRegressor if ds.task == data.REGRESSION else HistGradientBoostingClassifier
    return kind(random_state=seed, categorical_features="from_dtype")


def linear(ds: data.DataSet):
    """Median imputation (with missing-value indicators) and scaling for numbers, the most frequent
    value and one-hot encoding for text; LogisticRegression (lbfgs: multinomial for classes) or Ridge."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = [("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
              ds.numeric)]
    if ds.categorical:
        parts.append(("text", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                            OneHotEncoder(handle_unknown="ignore")), ds.categorical))
    model = Ridge() if ds.task == data.REGRESSION else LogisticRegression(max_iter=5000)
    return make_pipeline(ColumnTransformer(parts), model)


def score(ds: data.DataSet, fitted, x: pd.DataFrame, y: pd.Series) -> float:
    """The set's metric in points: ROC AUC, accuracy or R², x100."""
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    if ds.task == data.BINARY:
        return 100 * roc_auc_score(y, fitted.predict_proba(x)[:, list(fitted.classes_).index(1)])
    if ds.task == data.MULTICLASS:
        return 100 * accuracy_score(y, fitted.predict(x))
    return 100 * r2_score(y, fitted.predict(x))


def baseline_fold(ds: data.DataSet, train: pd.DataFrame, test: pd.DataFrame, r: int) -> dict:
    found = {}
    for name, model in (("hgb", hgb(ds, r)), ("linear", linear(ds))):
        started = time.perf_counter()
        model.fit(train[ds.features], train[ds.label])
        found[name] = score(ds, model, test[ds.features], test[ds.label])
        found[f"{name}_s"] = round(time.perf_counter() - started, 3)
    return found


# -- the protocol ----------------------------------------------------------------------------------

def run_set(ds: data.DataSet, frame: pd.DataFrame, api, dsn: Dsn, model_base: Path, args) -> list[dict]:
    folds = []
    for r in range(args.repeats):
        for h in (0, 1):
            train = frame[frame[data.fold_name(r)] == h]
            test = frame[frame[data.fold_name(r)] == 1 - h]
            started = time.perf_counter()
            fold = {"set": ds.name, "r": r, "h": h, "rows_train": len(train), "rows_test": len(test),
                    "mlbridge": mlbridge_fold(api, dsn, model_base, ds, r, h, args.model_type, args.epochs),
                    **baseline_fold(ds, train, test, r)}
            folds.append(fold)
            log(f"{ds.name} r={r} h={h} {time.perf_counter() - started:.1f} s: {_fold_line(fold)}")
    return folds


def _fold_line(fold: dict) -> str:
    ml = fold["mlbridge"]
    side = (f"mlbridge {ml['score']:.2f} ({ml['model_type']}, fit {ml['fit_s']:.1f} s)" if "score" in ml
            else f"mlbridge FAILED ({ml['error'][:200]})")
    return f"{side}, hgb {fold['hgb']:.2f}, linear {fold['linear']:.2f}"


def mean_std(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": math.nan, "std": math.nan}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(ds: data.DataSet, folds: list[dict]) -> dict:
    done = [f for f in folds if "score" in f["mlbridge"]]
    ml = mean_std([f["mlbridge"]["score"] for f in done])
    base = {name: mean_std([f[name] for f in folds]) for name in BASELINES}
    best = max(BASELINES, key=lambda name: base[name]["mean"])
    paired = mean_std([f["mlbridge"]["score"] - f[best] for f in done])
    gap = ml["mean"] - base[best]["mean"]
    if len(done) < len(folds):
        verdict = "FAILED"
    else:
        verdict = "ok" if gap >= -TOLERANCE else "SHORT"
    scored = [f["mlbridge"]["metrics"].get("rows") for f in done]
    return {"set": ds.name, "rows": len(ds.frame), "task": ds.task, "metric": ds.metric,
            "mlbridge": ml, "picked": dict(Counter(f["mlbridge"]["model_type"] for f in done)),
            **base, "best": best, "gap": gap, "paired": paired, "verdict": verdict,
            "fit_s": statistics.fmean(f["mlbridge"]["fit_s"] for f in done) if done else math.nan,
            "folds_failed": len(folds) - len(done),
            "rows_unscored": int(sum(f["rows_test"] - n for f, n in zip(done, scored) if n is not None))}


# -- the report ------------------------------------------------------------------------------------

def _num(value: float, spec: str = ".2f") -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _pm(pair: dict[str, float]) -> str:
    return "-" if math.isnan(pair["mean"]) else f"{pair['mean']:.2f} ± {pair['std']:.2f}"


def report(summaries: list[dict], args) -> str:
    lines = [f"paired {args.repeats}x2-fold cross-validation, mlbridge model type {args.model_type}"
             + (f", at most {args.epochs} epochs per network" if args.epochs else "")
             + (" (FAKE: harness self-test, not mlbridge)" if args.fake_mlbridge else ""), "",
             "| set | rows | task | metric | mlbridge | picked | HGB | linear | best | gap | paired diff | s/fit "
             "| verdict |",
             "| --- | ---: | --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for s in summaries:
        picked = ", ".join(f"{k} {v}" for k, v in sorted(s["picked"].items())) or "-"
        lines.append(f"| {s['set']} | {s['rows']:,} | {s['task']} | {s['metric']} | {_pm(s['mlbridge'])} | {picked} "
                     f"| {_pm(s['hgb'])} | {_pm(s['linear'])} | {s['best']} | {_num(s['gap'], '+.2f')} | {_pm(s['paired'])} "
                     f"| {_num(s['fit_s'], '.1f')} | {s['verdict']} |")
    lines.append("")
    lines.append(f"scores in points (x100): ROC AUC, accuracy, R²; mean ± std over the folds; gap = mlbridge - best "
                 f"baseline by mean; ok when gap >= -{TOLERANCE:g}")
    for s in summaries:
        if s["folds_failed"]:
            lines.append(f"{s['set']}: mlbridge failed on {s['folds_failed']} fold(s); see the JSON for the errors")
        if s["rows_unscored"]:
            lines.append(f"{s['set']}: mlbridge's evaluate scored {s['rows_unscored']} fewer test rows than the "
                         "baselines (rows it skipped)")
    return "\n".join(lines)


def _plain(value):
    """numpy numbers and NaN as JSON takes them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def write_json(path: Path, args, folds: list[dict], summaries: list[dict]) -> None:
    import sklearn

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"protocol": f"{args.repeats}x2-fold cross-validation", "model_type": args.model_type,
               "fake_mlbridge": args.fake_mlbridge, "synthetic_rows": args.synthetic_rows, "epochs": args.epochs,
               "sklearn": sklearn.__version__, "tolerance_points": TOLERANCE,
               "summaries": summaries, "folds": folds}
    path.write_text(json.dumps(_plain(payload), indent=1) + "\n")


def final_line(summaries: list[dict], path: Path) -> str:
    sets = {s["set"]: {"metric": s["metric"], "mlbridge": round(s["mlbridge"]["mean"], 2), "best": s["best"],
                       "best_score": round(s[s["best"]]["mean"], 2), "gap": round(s["gap"], 2), "verdict": s["verdict"],
                       "picked": s["picked"], "fit_s": round(s["fit_s"], 2)} for s in summaries}
    return json.dumps(_plain({"ok": all(s["verdict"] == "ok" for s in summaries), "json": str(path), "sets": sets}))


# -- the command -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(data.LOADERS), help="comma-separated (default: all six)")
    parser.add_argument("--synthetic-rows", type=int, default=None,
                        help=f"rows of the synthetic set (default {data.SYNTHETIC_ROWS:,}; {QUICK_ROWS:,} with --quick)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of the 2-fold split (default 5)")
    parser.add_argument("--model-type", default="auto", choices=MODEL_TYPES, help="what mlbridge trains (default auto)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="at most this many epochs per network fit (default: the trainer's own; for smokes)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke: {QUICK_ROWS:,} synthetic rows, --repeats 1")
    parser.add_argument("--keep-db", action="store_true", help="keep the database (and models) under .run/quality, running")
    parser.add_argument("--json", type=Path, default=RUN_DIR / "quality.json", help="where the fold results go")
    parser.add_argument("--fake-mlbridge", action="store_true", help=argparse.SUPPRESS)  # harness self-test, see above
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.synthetic_rows is None:
        args.synthetic_rows = QUICK_ROWS if args.quick else data.SYNTHETIC_ROWS
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in args.sets if s not in data.LOADERS]
    if unknown or not args.sets:
        parser.error(f"unknown set(s) {', '.join(unknown)}: there are {', '.join(data.LOADERS)}")
    if not 1 <= args.repeats <= 50:
        parser.error("--repeats must be 1 to 50")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sets = [data.load(name, args.synthetic_rows) for name in args.sets]
    api = trainer_api(args.fake_mlbridge)
    folds, summaries = [], []
    with contextlib.ExitStack() as stack:
        dsn, model_base = start_database(stack, args.keep_db)
        load_tables(dsn, sets, args.repeats)
        frames = read_tables(dsn, sets, args.repeats)
        for ds in sets:
            found = run_set(ds, frames.pop(ds.name), api, dsn, model_base, args)
            folds.extend(found)
            summaries.append(summarise(ds, found))
        if args.keep_db:
            log(f"database kept running: {dsn}; stop it with "
                f"`MLBRIDGE_RUN_DIR={RUN_DIR} {sys.executable} -m mlbridge db local stop`")
    write_json(args.json, args, folds, summaries)
    print(report(summaries, args))
    print(final_line(summaries, args.json))
    return 0 if all(s["verdict"] == "ok" for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
