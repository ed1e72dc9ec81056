"""Fixtures of the trainer tests: the session's database (the shared `dsn` fixture: the
mlbridge schema on the private server) with scikit-learn's bundled
data sets loaded as tables, a model base of the trainer's own, and one trained model.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from mlbridge import db
from mlbridge.config import Dsn
from mlbridge.db.install import data_schema, install, scratch_schema

INSERT_BATCH = 500
MODEL = "tr_cancer"  # the session's breast cancer model (version 1)


@pytest.fixture(scope="session")
def tdsn(dsn):
    """An mlbridge schema of the trainer tests' own (`mlbridge_trainer`, with their tables),
    which no bridge watches: the session's bridge would otherwise mark these models, which its
    model server does not host, unavailable in the catalog while the tests look at them."""
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_trainer"})
    install(target)
    yield target
    conn = db.connect(target)
    cur = conn.cursor()
    for name in (target.database, scratch_schema(target.database), data_schema(target.database)):
        cur.execute(f"DROP DATABASE IF EXISTS {db.quote_ident(name)}")
    conn.close()


@pytest.fixture(scope="session")
def tmodel_base(tmp_path_factory):
    """Not the shared model base: the model server of other tests need not see these."""
    return tmp_path_factory.mktemp("trainer_models")


def load_table(dsn: Dsn, table: str, columns: dict[str, str], rows: list[tuple]) -> None:
    """CREATE `table` (id INT primary key, then `columns` name -> SQL type) and insert rows
    (id first) in batches."""
    conn = db.connect(dsn)
    cur = conn.cursor()
    t = db.quote_ident(table)
    cols = ", ".join(f"{db.quote_ident(c)} {kind}" for c, kind in columns.items())
    cur.execute(f"DROP TABLE IF EXISTS {t}")
    cur.execute(f"CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, {cols})")
    names = ", ".join(["id", *map(db.quote_ident, columns)])
    marks = ", ".join(["%s"] * (len(columns) + 1))
    sql = f"INSERT INTO {t} ({names}) VALUES ({marks})"
    for start in range(0, len(rows), INSERT_BATCH):
        cur.executemany(sql, rows[start : start + INSERT_BATCH])
    cur.close()
    conn.close()


def identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


@pytest.fixture(scope="session")
def cancer_table(tdsn):
    """scikit-learn's breast cancer data: 569 rows, 30 DOUBLE features, `target` 0/1."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = [identifier(n) for n in data.feature_names]
    columns = {f: "DOUBLE NOT NULL" for f in features} | {"target": "TINYINT NOT NULL"}
    rows = [
        (i + 1, *map(float, x), int(y)) for i, (x, y) in enumerate(zip(data.data, data.target))
    ]
    load_table(tdsn, "tr_cancer", columns, rows)
    return {"table": "tr_cancer", "features": features, "x": data.data, "y": data.target.astype(np.float64)}


@pytest.fixture(scope="session")
def diabetes_table(tdsn):
    """scikit-learn's diabetes data: 442 rows, 10 DOUBLE features, `target` DOUBLE; plus three
    rows with a NULL (ids 1001..1003): two in a feature (imputed), one in the label (refused)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    features = list(data.feature_names)
    columns = {f: "DOUBLE NULL" for f in features} | {"target": "DOUBLE NULL"}
    rows = [
        (i + 1, *map(float, x), float(y)) for i, (x, y) in enumerate(zip(data.data, data.target))
    ]
    with_nulls = [list(rows[0]) for _ in range(3)]
    with_nulls[0][2] = None  # a feature
    with_nulls[1][5] = None
    with_nulls[2][-1] = None  # the label
    for i, row in enumerate(with_nulls):
        row[0] = 1001 + i
    load_table(tdsn, "tr_diabetes", columns, rows + [tuple(r) for r in with_nulls])
    return {"table": "tr_diabetes", "features": features, "x": data.data, "y": data.target.astype(np.float64)}


def split_ids(ids) -> dict[str, set[int]]:
    """The split rule with a key and the default fractions, written out again here: crc32 of the
    key's text, buckets 0-9 test, 10-19 validation, the rest train."""
    out = {"train": set(), "validation": set(), "test": set()}
    for i in ids:
        bucket = zlib.crc32(str(i).encode()) % 100
        out["test" if bucket < 10 else "validation" if bucket < 20 else "train"].add(i)
    return out


@pytest.fixture(scope="session")
def cancer_model(tdsn, tmodel_base, cancer_table):
    """Version 1 of MODEL trained on the breast cancer table: (TrainResult, query). Every model type
    is tried (auto), the networks for at most 20 epochs: enough for the metrics the tests ask of
    it (AUC 0.95, accuracy 0.9), in half the time of the default's up to 200."""
    from mlbridge_server.trainer import train

    query = f"SELECT id, {', '.join(cancer_table['features'])}, target FROM tr_cancer"
    return train(tdsn, query, "target", MODEL, tmodel_base, epochs=20, progress=False), query
