"""The data sets of `make quality`, and how they go into MySQL and come back out.

Every set is data a Python package ships (scikit-learn, palmerpenguins, ISLP) or one generated
here with a fixed seed: nothing is downloaded at run time. Each loader returns a DataSet: the
rows as a pandas DataFrame (features and label), the label column, the task, and the SQL type
of every column.

In MySQL each set is one table `quality.<name>`: `id INT PRIMARY KEY` (1..N), the columns with
their SQL types (NULLs kept as SQL NULL), and one fold column per repetition, `fold0`, `fold1`,
..., TINYINT 0/1: repetition r splits the rows in two halves with a permutation seeded by r, so
`WHERE fold2 = 0` is one half of repetition 2. The fold columns are never features.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = "quality"
BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
METRIC = {BINARY: "auc", MULTICLASS: "accuracy", REGRESSION: "r2"}  # mlbridge's metric key per task
SYNTHETIC_ROWS = 1_000_000


@dataclass
class DataSet:
    name: str
    frame: pd.DataFrame  # features and label, in table order; no id, no folds
    label: str
    task: str  # BINARY, MULTICLASS or REGRESSION
    types: dict[str, str]  # column -> SQL type, for every column of frame

    @property
    def table(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def metric(self) -> str:
        return METRIC[self.task]

    @property
    def features(self) -> list[str]:
        return [c for c in self.types if c != self.label]

    @property
    def categorical(self) -> list[str]:
        """The feature columns that hold text."""
        return [c for c in self.features if is_text(self.types[c])]

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if not is_text(self.types[c])]


def is_text(sql_type: str) -> bool:
    return sql_type.upper().startswith(("VARCHAR", "CHAR", "TEXT"))


def identifier(name: str) -> str:
    """A column name as an identifier: every run of non-alphanumerics becomes one `_`."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def fold_name(r: int) -> str:
    return f"fold{r}"


# -- the loaders -----------------------------------------------------------------------------------

def _sklearn_set(name: str, bunch, label: str, label_type: str, task: str, labels=None) -> DataSet:
    frame = pd.DataFrame(bunch.data, columns=[identifier(c) for c in bunch.feature_names]).astype("float64")
    frame[label] = bunch.target if labels is None else labels
    types = {c: "DOUBLE" for c in frame.columns if c != label} | {label: label_type}
    return DataSet(name, frame, label, task, types)


def breast_cancer() -> DataSet:
    """569 tumours, 30 DOUBLE measurements; `target` 1 = benign, 0 = malignant."""
    from sklearn.datasets import load_breast_cancer

    return _sklearn_set("breast_cancer", load_breast_cancer(), "target", "TINYINT", BINARY)


def diabetes() -> DataSet:
    """442 patients, 10 DOUBLE baseline variables (as scikit-learn scales them); `target` the
    disease progression a year later."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    bunch.target = bunch.target.astype("float64")
    return _sklearn_set("diabetes", bunch, "target", "DOUBLE", REGRESSION)


def wine() -> DataSet:
    """178 wines, 13 DOUBLE chemical measurements; `cultivar` the class name ('class_0', ...)."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return _sklearn_set("wine", bunch, "cultivar", "VARCHAR(16)", MULTICLASS, bunch.target_names[bunch.target])


def penguins() -> DataSet:
    """344 penguins of 3 species: island and sex as text (sex has NULLs), four measurements
    (two rows without them), year."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    types = {"island": "VARCHAR(16)", "bill_length_mm": "DOUBLE", "bill_depth_mm": "DOUBLE",
             "flipper_length_mm": "DOUBLE", "body_mass_g": "DOUBLE", "sex": "VARCHAR(8)", "year": "INT",
             "species": "VARCHAR(16)"}
    return DataSet("penguins", _typed(frame[list(types)], types), "species", MULTICLASS, types)


WAGE_TEXT = ["maritl", "race", "education", "region", "jobclass", "health", "health_ins"]


def wage() -> DataSet:
    """3,000 men in the Mid-Atlantic region (ISLP): year, age and 7 categories as text; `wage`.
    `logwage` is dropped: it is the label in another form."""
    from ISLP import load_data

    frame = load_data("Wage").drop(columns=["logwage"])
    types = {"year": "INT", "age": "INT"} | {c: "VARCHAR(64)" for c in WAGE_TEXT} | {"wage": "DOUBLE"}
    return DataSet("wage", _typed(frame[list(types)], types), "wage", REGRESSION, types)


def synthetic(rows: int = SYNTHETIC_ROWS) -> DataSet:
    """`rows` generated rows (numpy seed 0) whose binary label `y` needs interactions: a product
    x0*x1, a wave sin(3*x2), x3 only where category c is in {c1, c3, c4, c6}, linear x4 and x5,
    and noise. x5 is NULL in about 5% of the rows (after the label is drawn)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 6))
    c = rng.integers(0, 8, rows)
    hot = np.isin(c, [1, 3, 4, 6])
    z = x[:, 0] * x[:, 1] + np.sin(3 * x[:, 2]) + hot * x[:, 3] - 0.5 * x[:, 4] + 0.5 * x[:, 5]
    y = (z + rng.normal(scale=0.5, size=rows) > 0).astype("int8")
    x[rng.random(rows) < 0.05, 5] = np.nan
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame["c"] = np.array([f"c{i}" for i in range(8)])[c]
    frame["y"] = y
    types = {f"x{i}": "DOUBLE" for i in range(6)} | {"c": "VARCHAR(8)", "y": "TINYINT"}
    return DataSet("synthetic", frame, "y", BINARY, types)


LOADERS: dict[str, Callable[..., DataSet]] = {
    "breast_cancer": breast_cancer, "diabetes": diabetes, "wine": wine,
    "penguins": penguins, "wage": wage, "synthetic": synthetic,
}


def load(name: str, synthetic_rows: int = SYNTHETIC_ROWS) -> DataSet:
    if name not in LOADERS:
        raise SystemExit(f"quality: no data set {name!r} (there are {', '.join(LOADERS)})")
    return synthetic(synthetic_rows) if name == "synthetic" else LOADERS[name]()


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """Text columns as Python strings with NaN for missing (not pandas categories), the rest as numbers."""
    out = pd.DataFrame(index=frame.index)
    for column, sql_type in types.items():
        if is_text(sql_type):
            out[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
        else:
            out[column] = pd.to_numeric(frame[column])
    return out.reset_index(drop=True)


# -- folds ---------------------------------------------------------------------------------------

def folds(rows: int, repeats: int) -> pd.DataFrame:
    """Column fold<r> for r in 0..repeats-1: 0 or 1 per row, two halves (sizes differ by at most
    one) from a permutation seeded by r. Repetition r's split is the same whatever `repeats` is."""
    out = {}
    for r in range(repeats):
        half = np.zeros(rows, dtype="int8")
        half[np.random.default_rng(r).permutation(rows)[rows // 2:]] = 1
        out[fold_name(r)] = half
    return pd.DataFrame(out)


# -- into MySQL and back -------------------------------------------------------------------------

def create_table(cur, ds: DataSet, repeats: int) -> None:
    columns = [f"`{c}` {t}" for c, t in ds.types.items()]
    columns += [f"`{fold_name(r)}` TINYINT NOT NULL" for r in range(repeats)]
    cur.execute(f"DROP TABLE IF EXISTS {ds.table}")
    cur.execute(f"CREATE TABLE {ds.table} (id INT PRIMARY KEY, {', '.join(columns)})")


def _escaped(frame: pd.DataFrame, text_columns: list[str]) -> pd.DataFrame:
    """Text as LOAD DATA reads it with its default escapes (backslash, tab and newline escaped)."""
    frame = frame.copy()
    for column in text_columns:
        values = frame[column]
        frame[column] = values.where(values.isna(), values.astype(str).str.replace("\\", "\\\\", regex=False)
                                     .str.replace("\t", "\\t", regex=False).str.replace("\n", "\\n", regex=False))
    return frame


def write_table(conn, ds: DataSet, repeats: int, folder: Path) -> None:
    """Create `quality.<name>` and fill it with `LOAD DATA LOCAL INFILE` from a tab-separated file
    in `folder` (conn must be opened with allow_local_infile_in_path=folder). Doubles are written
    as the shortest text of their exact value (repr), NULLs as \\N."""
    cur = conn.cursor()
    create_table(cur, ds, repeats)
    text = [c for c, t in ds.types.items() if is_text(t)]
    frame = pd.concat([pd.Series(np.arange(1, len(ds.frame) + 1), name="id"),
                       _escaped(ds.frame[list(ds.types)], text), folds(len(ds.frame), repeats)], axis=1)
    path = folder / f"{ds.name}.tsv"
    frame.to_csv(path, sep="\t", header=False, index=False, na_rep="\\N", quoting=csv.QUOTE_NONE,
                 lineterminator="\n")
    literal = str(path).replace("\\", "\\\\").replace("'", "\\'")
    names = ", ".join(f"`{c}`" for c in frame.columns)
    cur.execute(f"LOAD DATA LOCAL INFILE '{literal}' INTO TABLE {ds.table} "
                f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({names})")
    cur.execute("SHOW WARNINGS")
    warnings = cur.fetchall()
    cur.close()
    conn.commit()
    path.unlink()
    if warnings:
        raise SystemExit(f"quality: loading {ds.table} gave warnings, e.g. {warnings[:3]}")


def read_table(conn, ds: DataSet, repeats: int) -> pd.DataFrame:
    """The table back from MySQL, ordered by id: numeric features as float64 (NULL -> NaN), text
    features as pandas categories (NULL -> missing; the categories of the whole table, so both
    halves of a split share them), the label (int 0/1, class name or float) and the fold columns."""
    names = ["id", *ds.features, ds.label, *(fold_name(r) for r in range(repeats))]
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM {ds.table} ORDER BY id")
    frame = pd.DataFrame.from_records(cur.fetchall(), columns=names)
    cur.close()
    for column in ds.numeric:
        frame[column] = frame[column].astype("float64")
    for column in ds.categorical:
        frame[column] = frame[column].astype(object).astype("category")
    frame[ds.label] = frame[ds.label].astype({BINARY: "int64", MULTICLASS: object, REGRESSION: "float64"}[ds.task])
    return frame
