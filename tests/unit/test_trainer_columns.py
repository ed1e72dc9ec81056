"""Column roles, task choice, model names: the trainer's pure rules."""

import pytest
from mysql.connector import FieldType

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import (
    BINARY,
    CATEGORY,
    DATE,
    MULTICLASS,
    NUMBER,
    REGRESSION,
    SET,
    ModelRef,
    SqlColumn,
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


def test_columns_become_the_kinds_models_take():
    cols = classify_columns([
        ("a", D), ("b", DEC), ("flag", FieldType.TINY), ("city", S), ("note", FieldType.BLOB, 16, 45),
        ("e", FieldType.STRING, 256, 45), ("s", FieldType.STRING, 2048, 45), ("d", FieldType.DATE),
        ("at", FieldType.DATETIME), ("ts", FieldType.TIMESTAMP), ("yr", FieldType.YEAR), ("y", I)], "y")
    assert dict(zip(cols.feature_names, cols.kinds)) == {
        "a": NUMBER, "b": NUMBER, "flag": NUMBER, "city": CATEGORY, "note": CATEGORY, "e": CATEGORY,
        "s": SET, "d": DATE, "at": DATE, "ts": DATE, "yr": NUMBER}


@pytest.mark.parametrize("column, shown, fix", [
    (("raw", FieldType.BLOB, 144, 63), "BLOB", "CONVERT(raw USING utf8mb4)"),
    (("vb", FieldType.VAR_STRING, 128, 63), "VARBINARY", "CONVERT(vb USING utf8mb4)"),
    (("t", FieldType.TIME, 128, 63), "TIME", "TIME_TO_SEC(t)"),
    (("g", FieldType.GEOMETRY, 128, 63), "GEOMETRY", "cast it"),
])
def test_types_no_model_takes_are_refused_by_name_with_the_fix(column, shown, fix):
    with pytest.raises(MlbridgeError, match=rf"feature column '{column[0]}' is {shown}.*") as caught:
        classify_columns([column, ("y", I)], "y")
    assert fix in str(caught.value)


def test_string_and_enum_labels_are_classes():
    assert classify_columns([("a", D), ("y", S)], "y").label_kind == CATEGORY
    assert classify_columns([("a", D), ("y", FieldType.STRING, 256, 45)], "y").label_kind == CATEGORY


def test_dates_and_sets_are_no_labels():
    for column in (("y", FieldType.DATE), ("y", FieldType.STRING, 2048, 45)):
        with pytest.raises(MlbridgeError, match="a label must be"):
            classify_columns([("a", D), column], "y")


def test_a_dataset_of_features_alone_has_no_label():
    cols = classify_columns([("id", I), ("a", D), ("c", S)], None)
    assert cols.label is None and cols.feature_names == ["a", "c"]


def test_describe_cursor_reads_flags_and_charset():
    assert SqlColumn("e", FieldType.STRING, 256, 45).type_name == "ENUM"
    assert SqlColumn("x", FieldType.BLOB, 16, 45).type_name == "TEXT"


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


def test_task_choice_from_the_label():
    assert choose_task("y", NUMBER, [0.0, 1.0]) == BINARY
    assert choose_task("y", NUMBER, [0.0, 1.0, 2.0]) == REGRESSION
    assert choose_task("y", NUMBER, [-1.5, 7.25]) == REGRESSION
    assert choose_task("y", CATEGORY, ["No", "Yes"]) == BINARY
    assert choose_task("y", CATEGORY, ["a", "b", "c"]) == MULTICLASS


def test_task_overrides():
    assert choose_task("y", NUMBER, [0.0, 1.0, 2.0], MULTICLASS) == MULTICLASS
    assert choose_task("y", NUMBER, [0.0, 1.0], REGRESSION) == REGRESSION
    assert choose_task("y", CATEGORY, ["No", "Yes"], MULTICLASS) == MULTICLASS
    for label_kind, values, task, message in [
        (CATEGORY, ["a", "b"], REGRESSION, "cannot be a regression"),
        (CATEGORY, ["a", "b", "c"], BINARY, "two classes"),
        (NUMBER, [0.0, 2.0], BINARY, "0/1 label"),
        (NUMBER, [0.5, 2.0], MULTICLASS, "fractions"),
        (NUMBER, [0.0, 1.0], "ranking", "unknown task"),
    ]:
        with pytest.raises(MlbridgeError, match=message):
            choose_task("y", label_kind, values, task)


def test_a_label_with_one_value_leaves_nothing_to_learn():
    with pytest.raises(MlbridgeError, match="same value"):
        choose_task("y", NUMBER, [1.0])
    with pytest.raises(MlbridgeError, match="same value"):
        choose_task("y", CATEGORY, ["Yes"])


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


def test_loading_tensorflow_first_keeps_the_connector_c_extension():
    """TensorFlow in the process first makes the C extension fail to load; import_quietly
    loads the connector before it."""
    import subprocess
    import sys

    code = ("from mlbridge_server.tf_runtime import import_quietly; import_quietly(); "
            "import mysql.connector; print(mysql.connector.HAVE_CEXT)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]


def test_too_many_classes_is_refused():
    with pytest.raises(MlbridgeError, match="more than 1000 distinct values: at most 1000 classes"):
        choose_task("y", CATEGORY, [f"c{i}" for i in range(1001)])
