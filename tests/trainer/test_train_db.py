"""Training on real tables: scikit-learn's breast cancer (binary) and diabetes (regression) data
loaded into the database, streamed into TensorFlow, exported and served back from disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from mlbridge import db
from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer import evaluate, store, train

from .conftest import MODEL, split_ids

DIABETES = "SELECT id, {features}, target FROM tr_diabetes WHERE target IS NOT NULL"


@pytest.fixture(scope="module")
def diabetes_model(tdsn, tmodel_base, diabetes_table):
    query = DIABETES.format(features=", ".join(diabetes_table["features"]))
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
    assert set(result.candidates) == {"linear", "mlp", "gbt"}
    # the best validation AUC, or a simpler model within one standard error of it
    order = ["linear", "mlp", "gbt"]
    best = max(result.candidates, key=lambda k: (result.candidates[k]["auc"], -result.candidates[k]["log_loss"]))
    assert result.model_type == best or order.index(result.model_type) < order.index(best)
    assert result.metrics["auc"] >= 0.95 and result.metrics["accuracy"] >= 0.9
    assert {"accuracy", "auc", "log_loss", "positive_rate"} <= set(result.metrics)
    parts = split_ids(range(1, len(cancer_table["y"]) + 1))
    assert (result.rows_train, result.rows_validation, result.rows_test) == tuple(
        len(parts[p]) for p in ("train", "validation", "test"))
    # what a model's version carries beside the SavedModel
    assert (result.path / "training" / "learning_curves.png").stat().st_size > 1000
    assert any((result.path / "training" / "tensorboard" / "mlp").rglob("events.out.tfevents.*"))
    meta = json.loads((result.path / "assets.extra" / "mlbridge.json").read_text())
    assert (meta["task"], meta["model_type"], meta["split"]["key"]) == ("binary", result.model_type, "id")


def test_catalog_row(cancer_model, tdsn, cancer_table):
    result, query = cancer_model
    conn = db.connect(tdsn)
    cur = conn.cursor(dictionary=True)
    cur.execute("SELECT * FROM model_versions WHERE name = %s", (MODEL,))
    (row,) = cur.fetchall()
    conn.close()
    assert (row["version"], row["task"], row["state"], row["source"]) == (1, "binary", "available", "trainer")
    assert row["model_type"] == result.model_type
    assert json.loads(row["inputs"]) == [
        {"name": f, "dtype": "float32", "shape": [-1], "missing": True, "kind": "number"} for f in cancer_table["features"]]
    assert json.loads(row["outputs"]) == [
        {"name": "score", "dtype": "float32", "shape": [-1]},
        {"name": "label", "dtype": "int64", "shape": [-1]},
    ]
    assert (row["score_output"], row["label"], row["trained_on"]) == ("score", "target", query)
    assert row["trained_by"] == "root@localhost"  # the account of the trainer's session
    metrics = json.loads(row["metrics"])
    assert metrics["on"] == "test" and metrics["auc"] == pytest.approx(result.metrics["auc"])
    assert metrics["rows_test"] == result.rows_test
    assert set(metrics["candidates"]) == {"linear", "mlp", "gbt"}


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


def test_the_recorded_test_metrics_are_the_served_models(cancer_model, tdsn, tmodel_base, cancer_table):
    """`evaluate --key` scores the test rows through the SavedModel on disk and finds the
    metrics training recorded; on every row the model does at least as well."""
    result, _ = cancer_model
    got = evaluate(tdsn, "SELECT * FROM tr_cancer", "target", f"{MODEL}:1", tmodel_base, key="id")
    assert got["rows"] == result.rows_test
    for name in ("accuracy", "auc", "log_loss"):
        assert got[name] == pytest.approx(result.metrics[name], abs=1e-6), name
    x, y = cancer_table["x"], cancer_table["y"]
    out = serve(result.path, cancer_table["features"], x)
    assert ((out["score"] >= 0.5) == y).mean() >= 0.9
    assert (out["label"] == (out["score"] >= 0.5)).all()


def test_regression_imputes_null_features(diabetes_model, diabetes_table, tmodel_base):
    result, _ = diabetes_model
    assert result.task == "regression"
    assert {"rmse", "mae", "r2"} <= set(result.metrics)
    assert result.metrics["r2"] > 0.2
    # the two rows with a NULL feature are trained on, imputed; the NULL label row is filtered out
    assert result.rows_train + result.rows_validation + result.rows_test == len(diabetes_table["y"]) + 2
    x = diabetes_table["x"][:3].copy()
    x[0, 2] = np.nan
    score = serve(result.path, diabetes_table["features"], x)["score"]
    assert np.isfinite(score).all()
    # Served in label units: the SavedModel undoes the label's standardisation.
    all_scores = serve(result.path, diabetes_table["features"], diabetes_table["x"])["score"]
    assert abs(all_scores.mean() - diabetes_table["y"].mean()) < 0.15 * diabetes_table["y"].mean()


def test_a_null_label_is_refused_with_its_count(tdsn, tmp_path, diabetes_table):
    query = f"SELECT id, {', '.join(diabetes_table['features'])}, target FROM tr_diabetes"
    with pytest.raises(MlbridgeError, match=r"label column 'target' is NULL in 1 of 445 rows.*IS NOT NULL"):
        train(tdsn, query, "target", "tr_e", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model_type", ["linear", "gbt"])
def test_the_same_seed_gives_the_same_model(tdsn, tmp_path, cancer_table, model_type):
    query = f"SELECT id, {', '.join(cancer_table['features'])}, target FROM tr_cancer"
    scores = []
    for _ in range(2):
        result = train(tdsn, query, "target", f"tr_seed_{model_type}", tmp_path, model_type=model_type, seed=3,
                       epochs=5, progress=False, tensorboard=False)
        assert result.model_type == model_type
        scores.append(serve(result.path, cancer_table["features"], cancer_table["x"])["score"])
    np.testing.assert_array_equal(scores[0], scores[1])


def test_second_train_makes_version_2_and_key_option(cancer_model, tdsn, tmodel_base, cancer_table):
    """Trained again, the model gets version 2 beside version 1. A key named with `key` splits
    the rows like `id` did and is not an input."""
    features = cancer_table["features"]
    query = f"SELECT id AS patient, {', '.join(features)}, target FROM tr_cancer"
    result = train(tdsn, query, "target", MODEL, tmodel_base, key="patient", epochs=2, model_type="linear",
                   progress=False)
    assert result.version == 2
    assert (tmodel_base / MODEL / "1" / "saved_model.pb").is_file()
    assert (tmodel_base / MODEL / "2" / "saved_model.pb").is_file()
    assert "patient" not in result.inputs and result.inputs == features
    assert (result.rows_validation, result.rows_test) == (cancer_model[0].rows_validation, cancer_model[0].rows_test)
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
        ("tr_elsewhere", 4, "binary", "mlp", "[]", "[]", "score", "y", "{}", "SELECT 1", None),
    )
    conn.close()
    assert store.next_version(tmp_path / "tr_elsewhere", store.catalog_max_version(tdsn, "tr_elsewhere")) == 5
