"""Column roles, task choice, model names: the trainer's pure rules."""

import pytest
from mysql.connector import FieldType

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import (
    BINARY,
    REGRESSION,
    ModelRef,
    choose_task,
    classify_columns,
    parse_model_ref,
    serving_name_problem,
    validate_model_name,
)

D, I, S, DEC = FieldType.DOUBLE, FieldType.LONG, FieldType.VAR_STRING, FieldType.NEWDECIMAL


def test_id_is_the_default_key_and_never_a_feature():
    cols = classify_columns([("id", I), ("a", D), ("b", DEC), ("y", I)], "y")
    assert cols.feature_names == ["a", "b"]
    assert (cols.label_name, cols.key_name) == ("y", "id")


def test_no_key_without_id():
    cols = classify_columns([("a", D), ("y", D)], "y")
    assert cols.key is None and cols.feature_names == ["a"]


def test_named_key_of_any_type_is_excluded():
    cols = classify_columns([("customer", S), ("id", D), ("y", D)], "y", key="customer")
    assert cols.key_name == "customer" and cols.feature_names == ["id"]


def test_named_key_must_be_present():
    with pytest.raises(MlbridgeError, match="key column 'customer'.*a, y"):
        classify_columns([("a", D), ("y", D)], "y", key="customer")


def test_missing_label_lists_the_columns():
    with pytest.raises(MlbridgeError, match=r"label column 'target'.*\(id, a, b\)"):
        classify_columns([("id", I), ("a", D), ("b", D)], "target")


def test_label_matches_without_case_like_mysql():
    assert classify_columns([("a", D), ("Target", I)], "target").label_name == "Target"


def test_string_feature_is_named_with_its_type():
    with pytest.raises(MlbridgeError, match="feature column 'city' is VARCHAR"):
        classify_columns([("a", D), ("city", S), ("y", I)], "y")


def test_temporal_feature_is_refused():
    with pytest.raises(MlbridgeError, match="'at' is DATETIME"):
        classify_columns([("at", FieldType.DATETIME), ("y", I)], "y")


def test_string_label_is_refused():
    with pytest.raises(MlbridgeError, match="only numeric labels"):
        classify_columns([("a", D), ("y", S)], "y")


def test_label_and_key_cannot_coincide():
    with pytest.raises(MlbridgeError, match="both the label and the key"):
        classify_columns([("id", I), ("a", D)], "id")


def test_no_features_left():
    with pytest.raises(MlbridgeError, match="no feature columns"):
        classify_columns([("id", I), ("y", D)], "y")


@pytest.mark.parametrize("name", ["mean radius", "a-b", "1st", "_x", "class", "self", "Größe"])
def test_names_tensorflow_would_rename_are_refused(name):
    assert serving_name_problem(name)
    with pytest.raises(MlbridgeError, match="rename it in the query"):
        classify_columns([(name, D), ("y", D)], "y")


@pytest.mark.parametrize("name", ["a", "mean_radius", "X1", "sum", "type", "match", "inputs"])
def test_plain_names_are_fine(name):
    assert serving_name_problem(name) is None


def test_task_choice():
    assert choose_task("y", 100, 0, 0.0, 1.0) == BINARY
    assert choose_task("y", 100, 3, 0.0, 2.0) == REGRESSION
    assert choose_task("y", 100, 100, -1.5, 7.25) == REGRESSION
    with pytest.raises(MlbridgeError, match="same value"):
        choose_task("y", 100, 0, 1.0, 1.0)


@pytest.mark.parametrize("name", ["churn", "churn_v2", "a.b-c", "X", "m" * 64])
def test_valid_model_names(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "../up", "a/b", "bad name", "m" * 65, "a:1", "a@b", "é"])
def test_invalid_model_names(name):
    with pytest.raises(MlbridgeError, match="not a valid model name"):
        validate_model_name(name)


def test_model_refs():
    assert parse_model_ref("churn") == ModelRef("churn")
    assert parse_model_ref("churn:3") == ModelRef("churn", version=3)
    assert parse_model_ref("churn@canary") == ModelRef("churn", label="canary")
    for bad in ("churn:", "churn:x", "churn:0", ":3", "a@", ""):
        with pytest.raises(MlbridgeError):
            parse_model_ref(bad)


def test_importing_the_trainer_keeps_the_connector_c_extension():
    import subprocess
    import sys

    code = "import mlbridge_server.trainer.columns, mysql.connector; print(mysql.connector.HAVE_CEXT)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr
