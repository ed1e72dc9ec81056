"""Bad input to `train` fails with an MlbridgeError that names the problem, and leaves nothing
behind in the model base or the catalog. All of them fail before TensorFlow is even loaded."""

from __future__ import annotations

import uuid
import zlib

import pytest

from mlbridge import db
from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer import train


@pytest.fixture(scope="module")
def mixed_table(tdsn):
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS tr_mixed")
    cur.execute(
        "CREATE TABLE tr_mixed (id INT PRIMARY KEY, a DOUBLE, b DECIMAL(8,2), city VARCHAR(20), "
        "at DATETIME, y TINYINT, yn DOUBLE)"
    )
    cur.executemany(
        "INSERT INTO tr_mixed VALUES (%s, %s, %s, %s, NOW(), %s, %s)",
        [(i, i * 0.5, i, f"c{i % 3}", i % 2, None) for i in range(1, 41)],
    )
    conn.close()
    return "tr_mixed"


CASES = [
    ("SELECT id, a, b FROM tr_mixed", "y", "tr_e", r"label column 'y' is not among the query's columns \(id, a, b\)"),
    ("SELECT a, CAST(city AS BINARY) AS raw, y FROM tr_mixed", "y", "tr_e",
     r"feature column 'raw' is VARBINARY, which no model here can take: convert it to text"),
    ("SELECT a, TIME(at) AS t, y FROM tr_mixed", "y", "tr_e", r"feature column 't' is TIME.*TIME_TO_SEC\(t\)"),
    ("SELECT a, at FROM tr_mixed", "at", "tr_e", "label column 'at' is DATETIME: a label must be"),
    ("SELECT a, city, y FROM tr_mixed", "y", "tr_e", "unknown model type 'forest'"),
    ("DELETE FROM tr_mixed", "y", "tr_e", "must be a SELECT"),
    ("SELECT a, y FROM tr_mixed; DELETE FROM tr_mixed", "y", "tr_e", "must be a single SELECT"),
    ("SELECT a, nope, y FROM tr_mixed", "y", "tr_e", "query failed: Unknown column 'nope'"),
    ("SELECT a, y FROM tr_missing_table", "y", "tr_e", "query failed: .*tr_missing_table.* doesn't exist"),
    ("SELECT a, y FROM tr_mixed", "y", "../escape", "not a valid model name"),
    ("SELECT a, y FROM tr_mixed", "y", ".hidden", "not a valid model name"),
    ("SELECT a, y FROM tr_mixed WHERE 1 = 0", "y", "tr_e", "returned no rows"),
    ("SELECT a, yn FROM tr_mixed", "yn", "tr_e", "label column 'yn' is NULL in 40 of 40 rows"),
    ("SELECT a, y FROM tr_mixed WHERE id < 5", "y", "tr_e", "only [0-4] of the query's 4 rows fell in the training"),
    ("SELECT id, y FROM tr_mixed", "y", "tr_e", "no feature columns"),
    ("SELECT a, 1 AS y FROM tr_mixed", "y", "tr_e", "same value"),
    ("SELECT a AS `mean radius`, y FROM tr_mixed", "y", "tr_e", "rename it in the query"),
    ("SELECT a, y FROM tr_mixed", "y", "tr_e", "key column 'customer'"),
]


@pytest.mark.parametrize("query, label, model, message", CASES)
def test_bad_input(tdsn, tmp_path, mixed_table, query, label, model, message):
    key = "customer" if "customer" in message else None
    model_type = "forest" if "forest" in message else "auto"
    with pytest.raises(MlbridgeError, match=message) as caught:
        train(tdsn, query, label, model, tmp_path, key=key, model_type=model_type, progress=False)
    assert str(caught.value).startswith("mlbridge: ")
    assert list(tmp_path.iterdir()) == []


def test_refused_statements_did_not_run(tdsn, mixed_table):
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM tr_mixed")
    assert cur.fetchone() == (40,)
    cur.execute("SELECT COUNT(*) FROM models WHERE name = 'tr_e'")
    assert cur.fetchone() == (0,)
    conn.close()


def test_empty_validation_split(tdsn, tmp_path, mixed_table):
    """Rows whose keys all fall on the training side leave nothing to choose and stop on."""
    ids = [i for i in range(1, 41) if zlib.crc32(str(i).encode()) % 100 >= 20][:12]
    query = f"SELECT id, a, y FROM tr_mixed WHERE id IN ({', '.join(map(str, ids))})"
    with pytest.raises(MlbridgeError, match="none of the 12 rows fell in the validation split"):
        train(tdsn, query, "y", "tr_e", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"batch_size": 0}, "batch size must be at least 1"),
    ({"validation_fraction": 0.0}, "validation fraction must be above 0"),
    ({"test_fraction": 0.85}, "leave too few rows"),
    ({"task": "multiclass"}, "fractions"),
])
def test_bad_options(tdsn, tmp_path, mixed_table, options, message):
    with pytest.raises(MlbridgeError, match=message):
        train(tdsn, "SELECT id, a, b / 3 AS y FROM tr_mixed", "y", "tr_e", tmp_path, progress=False, **options)
    assert list(tmp_path.iterdir()) == []


def test_database_without_the_catalog(tdsn, tmp_path):
    name = f"tr_nocatalog_{uuid.uuid4().hex[:8]}"
    conn = db.connect(tdsn, database=False)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE {db.quote_ident(name)}")
    try:
        bare = Dsn(**{**tdsn.__dict__, "database": name})
        with pytest.raises(MlbridgeError, match="has no model catalog: run `mlbridge db install`"):
            train(bare, "SELECT 1 AS a, 0 AS y", "y", "tr_e", tmp_path, progress=False)
    finally:
        cur.execute(f"DROP DATABASE {db.quote_ident(name)}")
        conn.close()
