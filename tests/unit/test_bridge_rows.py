import json

import numpy as np
import pytest

from mlbridge.bridge import rows as r


def _rows(*features):
    return [r.Row(seq=i + 1, key=str(i + 1), features=json.dumps(f)) for i, f in enumerate(features)]


def test_build_batch_converts_in_input_order():
    batch = r.build_batch(_rows([1, 2.5], [3, "4.5"]), ["a", "b"], {"a": "float32", "b": "float64"})
    assert not batch.failed
    assert batch.inputs["a"].dtype == np.float32 and batch.inputs["a"].tolist() == [1.0, 3.0]
    assert batch.inputs["b"].dtype == np.float64 and batch.inputs["b"].tolist() == [2.5, 4.5]


@pytest.mark.parametrize(
    "value, dtype, fragment",
    [
        (None, "float32", "column b: NULL"),
        ("abc", "float32", "column b: \"abc\" is not a number"),
        (1e300, "float32", "out of range for float32"),
        (2.5, "int64", "not a whole number"),
        (300, "int8", "out of range for int8"),
        ([1, 2], "float32", "is not a number"),
        ({"x": 1}, "float32", "is not a number"),
        (7, "bool", "not true/false"),
    ],
)
def test_bad_value_fails_its_row_alone_naming_the_column(value, dtype, fragment):
    batch = r.build_batch(_rows([1, 0], [1, value], [5, 1]), ["a", "b"], {"a": "float32", "b": dtype})
    assert [f.seq for f in batch.failed] == [2]
    assert fragment in batch.failed[0].error and batch.failed[0].error.startswith("mlbridge: ")
    assert [row.seq for row in batch.rows] == [1, 3]
    assert len(batch.inputs["a"]) == 2


def test_wrong_number_of_values_fails_the_row():
    batch = r.build_batch(_rows([1]), ["a", "b"], {"a": "float32", "b": "float32"})
    assert batch.failed and "1 values for 2 inputs" in batch.failed[0].error


def test_strings_and_bools():
    batch = r.build_batch(_rows(["x", True], ["y", 0]), ["s", "t"], {"s": "string", "t": "bool"})
    assert batch.inputs["s"].tolist() == [b"x", b"y"]
    assert batch.inputs["t"].tolist() == [True, False]


def test_pick_score_output():
    assert r.pick_score_output(["label", "score"], None) == "score"
    assert r.pick_score_output(["probability"], None) == "probability"
    assert r.pick_score_output(["a", "b"], None) is None
    assert r.pick_score_output(["a", "b"], "b") == "b"
    assert r.pick_score_output(["a", "score"], "missing") == "score"


def test_result_rows_score_and_output_json():
    rows = _rows([1], [2])
    out = {"score": np.array([0.25, 0.75], np.float32), "label": np.array([0, 1], np.int64),
           "probs": np.array([[0.75, 0.25], [0.25, 0.75]], np.float32)}
    got = r.result_rows(rows, out, "score")
    assert [g[0] for g in got] == [1, 2]
    assert got[1][2] == pytest.approx(0.75)
    assert json.loads(got[1][3]) == {"score": 0.75, "label": 1, "probs": [0.25, 0.75]}
    assert got[0][4] is None


def test_result_rows_without_a_score_output_fail_with_a_fix():
    got = r.result_rows(_rows([1]), {"a": np.array([1.0]), "b": np.array([2.0])}, None)
    assert got[0][2] is None and "set models.score_output" in got[0][4]


def test_result_rows_non_scalar_score_and_nan():
    got = r.result_rows(_rows([1]), {"score": np.array([[0.1, 0.9]])}, "score")
    assert "holds 2 values per row" in got[0][4]
    got = r.result_rows(_rows([1]), {"score": np.array([np.nan])}, "score")
    assert got[0][2] is None and "non-finite" in got[0][4]


def test_result_rows_refuses_outputs_of_the_wrong_length():
    with pytest.raises(ValueError, match="not one entry per row"):
        r.result_rows(_rows([1], [2]), {"score": np.array([0.5])}, "score")


def test_fast_numeric_path_agrees_with_the_row_by_row_path(monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3)).tolist()
    values[7][1] = None  # sends the chunk down the row-by-row path
    rows = _rows(*values)
    dtypes = {"a": "float32", "b": "float64", "c": "float32"}
    clean = [row for row in rows if row.seq != 8]
    fast = r.build_batch(clean, ["a", "b", "c"], dtypes)
    assert r._build_numeric(clean, ["a", "b", "c"], dtypes) is not None
    mixed = r.build_batch(rows, ["a", "b", "c"], dtypes)
    assert [f.seq for f in mixed.failed] == [8] and "column b: NULL" in mixed.failed[0].error
    for name in dtypes:
        assert fast.inputs[name].dtype == mixed.inputs[name].dtype
        np.testing.assert_array_equal(fast.inputs[name], mixed.inputs[name])


def test_fast_and_general_result_paths_agree():
    rows = _rows(*([i] for i in range(40)))
    rng = np.random.default_rng(1)
    outputs = {"score": rng.random(40).astype(np.float32), "label": rng.integers(0, 2, 40),
               "value": rng.normal(size=40)}
    fast = r._fast_result_rows(rows, outputs, "score")
    assert fast is not None
    general = r.result_rows(rows, {**outputs, "extra": np.zeros((40, 2))}, "score")
    for a, b in zip(fast, general):
        assert a[:3] == b[:3] and a[4] is None and b[4] is None
        assert json.loads(a[3]) == {k: v for k, v in json.loads(b[3]).items() if k != "extra"}
    assert json.loads(fast[0][3])["score"] == float(outputs["score"][0])


def test_non_finite_outputs_become_null_in_valid_json():
    rows = _rows([1], [2])
    got = r.result_rows(rows, {"score": np.array([0.5, np.inf]), "other": np.array([np.nan, 1.0])}, "score")
    assert json.loads(got[0][3]) == {"score": 0.5, "other": None} and got[0][4] is None
    assert got[1][2] is None and "non-finite" in got[1][4] and json.loads(got[1][3])["score"] is None
