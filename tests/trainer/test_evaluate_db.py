"""`evaluate`: a trained version's metrics on labelled rows, streamed from the database."""

from __future__ import annotations

import pytest

from mlbridge import db
from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer import evaluate

from .conftest import MODEL, split_ids


def test_all_rows(cancer_model, tdsn, tmodel_base, cancer_table):
    got = evaluate(tdsn, "SELECT * FROM tr_cancer", "target", f"{MODEL}:1", tmodel_base)
    assert got["rows"] == len(cancer_table["y"])
    assert got["accuracy"] >= 0.9 and got["auc"] >= 0.95


def test_test_rows_give_the_training_metrics(cancer_model, tdsn, tmodel_base, cancer_table):
    """The rows `--key` picks are the test rows of the training split, chosen by the query here."""
    result, _ = cancer_model
    ids = sorted(split_ids(range(1, len(cancer_table["y"]) + 1))["test"])
    query = f"SELECT * FROM tr_cancer WHERE id IN ({', '.join(map(str, ids))})"
    got = evaluate(tdsn, query, "target", f"{MODEL}:1", tmodel_base)
    assert got["rows"] == result.rows_test
    for name in ("accuracy", "auc", "log_loss", "positive_rate"):
        assert got[name] == pytest.approx(result.metrics[name], abs=1e-6), name


def test_key_keeps_the_test_rows_only(cancer_model, tdsn, tmodel_base):
    result, _ = cancer_model
    got = evaluate(tdsn, "SELECT * FROM tr_cancer", "target", f"{MODEL}:1", tmodel_base, key="id")
    assert got["rows"] == result.rows_test
    with pytest.raises(MlbridgeError, match="key column 'nope'"):
        evaluate(tdsn, "SELECT * FROM tr_cancer", "target", f"{MODEL}:1", tmodel_base, key="nope")


def test_a_null_label_is_refused(cancer_model, tdsn, tmodel_base):
    with pytest.raises(MlbridgeError, match="label column 't2' is NULL in 1 rows"):
        evaluate(tdsn, "SELECT *, IF(id = 7, NULL, target) AS t2 FROM tr_cancer", "t2", f"{MODEL}:1", tmodel_base)


def test_label_reference(cancer_model, tdsn, tmodel_base):
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("REPLACE INTO model_labels (name, label, version) VALUES (%s, 'stable', 1)", (MODEL,))
    conn.close()
    got = evaluate(tdsn, "SELECT * FROM tr_cancer", "target", f"{MODEL}@stable", tmodel_base)
    assert got["accuracy"] >= 0.9


def test_missing_input_column(cancer_model, tdsn, tmodel_base):
    with pytest.raises(MlbridgeError, match=r"needs the column\(s\) .*\bmean_radius\b.*returns id, target"):
        evaluate(tdsn, "SELECT id, target FROM tr_cancer", "target", f"{MODEL}:1", tmodel_base)


def test_unknown_model(tdsn, tmodel_base):
    with pytest.raises(MlbridgeError, match="no versions of model 'tr_nothing'"):
        evaluate(tdsn, "SELECT 1 AS y", "y", "tr_nothing", tmodel_base)
