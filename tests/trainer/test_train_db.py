"""Training on real tables: scikit-learn's breast cancer (binary) and diabetes (regression) data
loaded into the database, streamed into TensorFlow, exported and served back from disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from mlbridge import db
from mlbridge_server.trainer import store, train

from .conftest import MODEL, holdout_ids


@pytest.fixture(scope="module")
def diabetes_model(tdsn, tmodel_base, diabetes_table):
    query = f"SELECT {', '.join(diabetes_table['features'])}, target FROM tr_diabetes ORDER BY id"
    return train(tdsn, query, "target", "tr_diabetes", tmodel_base, progress=False), query


def serve(path, features, x):
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    out = fn(**{f: tf.constant(x[:, i], dtype=tf.float32) for i, f in enumerate(features)})
    return {k: v.numpy() for k, v in out.items()}


def test_binary_version_on_disk(cancer_model, tmodel_base, cancer_table):
    result, _ = cancer_model
    assert (result.name, result.version, result.task) == (MODEL, 1, "binary")
    assert result.path == tmodel_base / MODEL / "1"
    assert (result.path / "saved_model.pb").is_file() and (result.path / "variables").is_dir()
    assert [p.name for p in (tmodel_base / MODEL).iterdir()] == ["1"]  # no staging leftovers
    assert result.inputs == cancer_table["features"]
    assert result.metrics["accuracy"] >= 0.9
    assert result.metrics["auc"] >= 0.95
    assert set(result.metrics) == {"accuracy", "auc", "log_loss", "positive_rate"}
    ids = range(1, len(cancer_table["y"]) + 1)
    assert result.rows_holdout == len(holdout_ids(ids))
    assert (result.rows_train, result.rows_skipped) == (len(ids) - result.rows_holdout, 0)


def test_catalog_row(cancer_model, tdsn, cancer_table):
    result, query = cancer_model
    conn = db.connect(tdsn)
    cur = conn.cursor(dictionary=True)
    cur.execute("SELECT * FROM models WHERE name = %s", (MODEL,))
    (row,) = cur.fetchall()
    conn.close()
    assert (row["version"], row["task"], row["state"], row["source"]) == (1, "binary", "available", "trainer")
    assert json.loads(row["inputs"]) == [{"name": f, "dtype": "float32", "shape": [-1]} for f in cancer_table["features"]]
    assert json.loads(row["outputs"]) == [
        {"name": "score", "dtype": "float32", "shape": [-1]},
        {"name": "label", "dtype": "int64", "shape": [-1]},
    ]
    assert (row["score_output"], row["label"], row["trained_on"]) == ("score", "target", query)
    metrics = json.loads(row["metrics"])
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert metrics["rows_holdout"] == result.rows_holdout


def test_signature_takes_columns_by_name(cancer_model, cancer_table):
    result, _ = cancer_model
    fn = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    args, kwargs = fn.structured_input_signature
    assert args == ()
    assert set(kwargs) == set(cancer_table["features"])
    for spec in kwargs.values():
        assert (spec.dtype, spec.shape.as_list()) == (tf.float32, [None])
    outputs = fn.structured_outputs
    assert set(outputs) == {"score", "label"}
    assert (outputs["score"].dtype, outputs["score"].shape.as_list()) == (tf.float32, [None])
    assert (outputs["label"].dtype, outputs["label"].shape.as_list()) == (tf.int64, [None])


def test_saved_model_scores_raw_rows(cancer_model, cancer_table):
    """Raw column values in, the trained scores out: the standardisation is inside the graph."""
    result, _ = cancer_model
    x, y = cancer_table["x"], cancer_table["y"]
    out = serve(result.path, cancer_table["features"], x)
    score, label = out["score"], out["label"]
    assert score.shape == label.shape == (len(y),)
    assert ((score >= 0) & (score <= 1)).all()
    assert (label == (score >= 0.5)).all()
    assert ((score >= 0.5) == y).mean() >= 0.9
    held = np.array([i + 1 in holdout_ids(range(1, len(y) + 1)) for i in range(len(y))])
    assert ((score[held] >= 0.5) == y[held]).mean() == pytest.approx(result.metrics["accuracy"])

    # The same network computed independently: standardise with numpy's own mean and variance
    # of the raw data, then the SavedModel's weights.
    weights = {v.name: v.numpy() for v in tf.saved_model.load(str(result.path)).model.variables}
    h = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0))
    for layer in ("dense_0", "dense_1"):
        h = np.maximum(h @ weights[f"{layer}/kernel:0"] + weights[f"{layer}/bias:0"], 0)
    expected = 1 / (1 + np.exp(-(h @ weights["output/kernel:0"] + weights["output/bias:0"])[:, 0]))
    np.testing.assert_allclose(score, expected, atol=1e-4)


def test_regression(diabetes_model, tdsn, diabetes_table):
    result, _ = diabetes_model
    assert result.task == "regression"
    assert set(result.metrics) == {"rmse", "mae", "r2"}
    assert result.metrics["r2"] > 0.3
    # Three rows with a NULL are skipped; without a key every fifth row (by ordinal) is held out.
    n = len(diabetes_table["y"])
    assert result.rows_skipped == 3
    assert result.rows_holdout == len([i for i in range(n) if i % 5 == 4])
    assert result.rows_train + result.rows_holdout == n

    x, y = diabetes_table["x"], diabetes_table["y"]
    score = serve(result.path, diabetes_table["features"], x)["score"].astype(np.float64)
    held = np.arange(n) % 5 == 4
    # Served in label units: the SavedModel undoes the label's standardisation.
    assert abs(score.mean() - y.mean()) < 0.15 * y.mean()
    assert np.sqrt(np.mean((score[held] - y[held]) ** 2)) == pytest.approx(result.metrics["rmse"], rel=1e-4)

    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("SELECT task, outputs FROM models WHERE name = 'tr_diabetes' AND version = 1")
    task, outputs = cur.fetchone()
    conn.close()
    assert task == "regression"
    assert [o["name"] for o in json.loads(outputs)] == ["score"]


def test_second_train_makes_version_2_and_key_option(cancer_model, tdsn, tmodel_base, cancer_table):
    """Trained again, the model gets version 2 beside version 1. A key named with `key` splits
    the rows like `id` did and is not an input."""
    features = cancer_table["features"]
    query = f"SELECT id AS patient, {', '.join(features)}, target FROM tr_cancer"
    result = train(tdsn, query, "target", MODEL, tmodel_base, key="patient", epochs=2, progress=False)
    assert result.version == 2
    assert (tmodel_base / MODEL / "1" / "saved_model.pb").is_file()
    assert (tmodel_base / MODEL / "2" / "saved_model.pb").is_file()
    assert "patient" not in result.inputs and result.inputs == features
    assert result.rows_holdout == cancer_model[0].rows_holdout
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("SELECT version FROM models WHERE name = %s ORDER BY version", (MODEL,))
    assert [v for (v,) in cur.fetchall()] == [1, 2]
    conn.close()


def test_catalog_ahead_of_disk_moves_the_number_on(tdsn, tmp_path):
    """A version the catalog knows (another trainer's, elsewhere) is never reused."""
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute(
        db.query("record_model_version"),
        ("tr_elsewhere", 4, "binary", "[]", "[]", "score", "y", "{}", "SELECT 1"),
    )
    conn.close()
    assert store.next_version(tmp_path / "tr_elsewhere", store.catalog_max_version(tdsn, "tr_elsewhere")) == 5
