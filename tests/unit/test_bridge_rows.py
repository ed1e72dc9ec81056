import datetime as dt
import decimal
import json
import math
import time

import numpy as np
import pytest

from mlbridge.bridge import rows as r

F32 = r.Input("a", "float32")


def _batch(rows, specs):
    """rows: one list of values per row, in specs order."""
    columns = [list(c) for c in zip(*rows)]
    return r.build_batch(list(range(1, len(rows) + 1)), columns, specs)


def test_build_batch_converts_in_input_order():
    batch = _batch([[1, 2.5], [3, decimal.Decimal("4.5")]], [r.Input("a", "float32"), r.Input("b", "float64")])
    assert not batch.failed
    assert batch.inputs["a"].dtype == np.float32 and batch.inputs["a"].tolist() == [1.0, 3.0]
    assert batch.inputs["b"].dtype == np.float64 and batch.inputs["b"].tolist() == [2.5, 4.5]


@pytest.mark.parametrize(
    "value, dtype, fragment",
    [
        (None, "float32", "column b: NULL"),
        ("abc", "float32", "column b: \"abc\" is not a number"),
        ("1_000", "float64", "\"1_000\" is not a number"),
        ("nan", "float64", "\"nan\" is not a number"),
        ("inf", "float32", "\"inf\" is not a number"),
        ("12abc", "float32", "is not a number"),
        ("", "float32", "is not a number"),
        (math.nan, "float32", "not a finite number"),
        (math.inf, "float64", "not a finite number"),
        (1e300, "float32", "out of range for float32"),
        (10**400, "float64", "out of range for float64"),
        ("9" * 400, "float64", "is out of range for float64"),
        ("9" * 5000, "int64", "is out of range for int64"),  # not int()'s 4300-digit ValueError
        (decimal.Decimal("1e400"), "float64", "not a finite number"),
        (2.5, "int64", "not a whole number"),
        (300, "int8", "out of range for int8"),
        (dt.date(2024, 1, 2), "float32", "is not a number"),
        (b"\xff\xfe", "float32", "binary data is not a number"),
        ([1, 2], "float32", "is not a number"),
        ({"x": 1}, "float32", "is not a number"),
        (7, "bool", "not true/false"),
        (None, "int64", "column b: NULL"),
    ],
)
def test_bad_value_fails_its_row_alone_naming_the_column(value, dtype, fragment):
    batch = _batch([[1, 0], [1, value], [5, 1]], [F32, r.Input("b", dtype)])
    assert [f.seq for f in batch.failed] == [2]
    assert fragment in batch.failed[0].error and batch.failed[0].error.startswith("mlbridge: ")
    assert batch.seqs == [1, 3]
    assert len(batch.inputs["a"]) == 2 and batch.inputs["a"].tolist() == [1.0, 5.0]


def test_complete_numbers_in_text_are_taken():
    batch = _batch([["12"], ["-1.5e3"], [".5"], ["+7."]], [r.Input("a", "float64")])
    assert not batch.failed and batch.inputs["a"].tolist() == [12.0, -1500.0, 0.5, 7.0]
    batch = _batch([["12"], [decimal.Decimal("3")], [True]], [r.Input("a", "int64")])
    assert not batch.failed and batch.inputs["a"].tolist() == [12, 3, 1]


# Text for a numeric input is taken only when it is a complete number: an optional sign, ASCII
# digits with an optional point, an optional exponent (rows.NUMBER_TEXT). Blanks are refused
# too, around the number as well (the decision: the column's text is scored as it is, and the
# message says to TRIM() it in the query; MySQL's CAST skips leading blanks but warns on
# trailing ones).
BLANKED = [" 1", "1 ", " 1 ", "\t1", "1\n", "\u00a01"]
NOT_NUMBERS = ["1_000", "0x10", "nan", "NaN", "inf", "-inf", "infinity", "1e", "1e+", ".", "+", "-", "", " ", "e5",
               "1.2.3", "1,5", "--1", "1 000", "12abc", "\u0661\u0662", "\uff11\uff12", "1\u0662"]
NUMBERS = [("1", 1.0), ("-1.5", -1.5), (".5", 0.5), ("1e3", 1000.0), ("+2", 2.0), ("7.", 7.0), ("-0", -0.0),
           ("00012", 12.0), ("1.5E-2", 0.015), ("2e+3", 2000.0)]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("text", BLANKED + NOT_NUMBERS)
def test_text_that_is_not_a_complete_number_is_refused(text, dtype):
    fix = "it has blanks around it; TRIM() the column in the query" if text in BLANKED else "plain decimal number"
    for value in (text, text.encode()):
        batch = _batch([[1, "1"], [1, value]], [F32, r.Input("b", dtype)])
        assert [f.seq for f in batch.failed] == [2] and batch.seqs == [1]
        error = batch.failed[0].error
        assert error.startswith(f"mlbridge: column b: {r._show(text)} is not a number ({dtype}): "), error
        assert fix in error


@pytest.mark.parametrize("text, number", NUMBERS)
def test_complete_numbers_are_taken_exactly(text, number):
    batch = _batch([[text]], [r.Input("a", "float64")])
    assert not batch.failed and batch.inputs["a"].tolist() == [number]
    assert str(batch.inputs["a"][0]) == str(np.float64(number))  # -0.0 stays -0.0
    if number == int(number):
        batch = _batch([[text]], [r.Input("a", "int64")])
        assert not batch.failed and batch.inputs["a"].tolist() == [int(number)]


def test_integer_inputs_take_text_exactly_never_through_a_double():
    spec = r.Input("n", "int64")
    assert r.convert_value("9007199254740993", spec) == 9007199254740993  # 2**53 + 1
    assert r.convert_value("9007199254740993.0", spec) == 9007199254740993
    assert r.convert_value("90071992547409930e-1", spec) == 9007199254740993
    assert r.convert_value("-9223372036854775808", spec) == -2**63
    assert r.convert_value("0" * 5000 + "1", spec) == 1
    assert r.convert_value("0e-99999999999999999999", spec) == 0
    for text, fragment in (("9223372036854775808", "out of range for int64"), ("1e99999999999999999999", "out of range"),
                           ("12.5e-1", "not a whole number"), ("1e-99999999999999999999", "not a whole number")):
        with pytest.raises(r.ValueRefused, match=fragment):
            r.convert_value(text, spec)


def test_a_long_text_is_refused_in_linear_time():
    """The former pattern backtracked quadratically on a run of digits: 40 s for 40,000."""
    started = time.monotonic()
    _, errors = r.convert_column(["9" * 1_000_000 + "x", "1" * 1_000_000 + ".5e"], r.Input("a", "float32"))
    assert list(errors) == [0, 1] and time.monotonic() - started < 2


def test_strings_dates_and_bools():
    specs = [r.Input("s", "string"), r.Input("t", "bool")]
    rows = [["x", True], [dt.date(2024, 5, 1), 0], [dt.datetime(2024, 5, 1, 13, 45), 1], [bytearray(b"raw"), 1],
            [decimal.Decimal("1.50"), 0], [42, 1]]
    batch = _batch(rows, specs)
    assert not batch.failed
    assert batch.inputs["s"].tolist() == [b"x", b"2024-05-01", b"2024-05-01T13:45:00", b"raw", b"1.50", b"42"]
    assert batch.inputs["t"].tolist() == [True, False, True, True, False, True]


def test_null_is_a_missing_value_where_the_model_takes_one():
    specs = [r.Input("x", "float32", missing=True), r.Input("s", "string", missing=True)]
    batch = _batch([[None, None], [1.5, "a"]], specs)
    assert not batch.failed
    assert math.isnan(batch.inputs["x"][0]) and batch.inputs["x"][1] == 1.5
    assert batch.inputs["s"].tolist() == [b"", b"a"]


def test_a_row_with_several_bad_values_fails_once_naming_the_first():
    batch = _batch([[None, "x"], [1.0, 2.0]], [r.Input("a", "float32"), r.Input("b", "float32")])
    assert [f.seq for f in batch.failed] == [1] and "column a" in batch.failed[0].error


def test_fast_numeric_path_agrees_with_the_value_by_value_path():
    rng = np.random.default_rng(0)
    values = rng.normal(size=50).tolist()
    spec = r.Input("a", "float32")
    fast, errors = r.convert_column(values, spec)
    assert isinstance(fast, np.ndarray) and not errors
    slow = [r.convert_value(v, spec) for v in values]
    np.testing.assert_array_equal(np.asarray(fast, np.float32), np.asarray(slow, np.float32))
    values[7] = None
    _, errors = r.convert_column(values, spec)
    assert list(errors) == [7] and "NULL" in errors[7]


def test_json_rows_of_the_first_schema():
    seqs, columns, failed = r.json_columns([1, 2, 3], ["[1, 2]", "[1]", "not json"], ["a", "b"])
    assert seqs == [1] and columns == [[1], [2]]
    assert [f.seq for f in failed] == [2, 3] and "1 values for 2 inputs" in failed[0].error


def test_pick_score_output():
    assert r.pick_score_output(["label", "score"], None) == "score"
    assert r.pick_score_output(["probability"], None) == "probability"
    assert r.pick_score_output(["a", "b"], None) is None
    assert r.pick_score_output(["a", "b"], "b") == "b"
    assert r.pick_score_output(["a", "score"], "missing") == "score"


def test_results_score_and_output_json():
    out = {"score": np.array([0.25, 0.75], np.float32), "label": np.array([0, 1], np.int64),
           "probs": np.array([[0.75, 0.25], [0.25, 0.75]], np.float32)}
    got = r.results([1, 2], out, "score")
    assert [g.seq for g in got] == [1, 2]
    assert got[1].score == pytest.approx(0.75)
    assert json.loads(got[1].output) == {"score": 0.75, "label": 1, "probs": [0.25, 0.75]}
    assert got[0].error is None


def test_results_without_a_score_output_fail_with_a_fix():
    got = r.results([1], {"a": np.array([1.0]), "b": np.array([2.0])}, None)
    assert got[0].score is None and "set models.score_output" in got[0].error


def test_results_non_scalar_score_and_nan():
    got = r.results([1], {"score": np.array([[0.1, 0.9]])}, "score")
    assert "holds 2 values per row" in got[0].error
    got = r.results([1], {"score": np.array([np.nan])}, "score")
    assert got[0].score is None and "non-finite" in got[0].error


def test_results_refuse_outputs_of_the_wrong_length():
    with pytest.raises(ValueError, match="not one entry per row"):
        r.results([1, 2], {"score": np.array([0.5])}, "score")


def test_fast_and_general_result_paths_agree():
    seqs = list(range(1, 41))
    rng = np.random.default_rng(1)
    outputs = {"score": rng.random(40).astype(np.float32), "label": rng.integers(0, 2, 40),
               "value": rng.normal(size=40)}
    fast = r._fast_results(seqs, outputs, "score")
    assert fast is not None
    general = r.results(seqs, {**outputs, "extra": np.zeros((40, 2))}, "score")
    for a, b in zip(fast, general):
        assert (a.seq, a.score) == (b.seq, b.score) and a.error is None and b.error is None
        assert json.loads(a.output) == {k: v for k, v in json.loads(b.output).items() if k != "extra"}
    assert json.loads(fast[0].output)["score"] == float(outputs["score"][0])


def test_non_finite_outputs_become_null_in_valid_json():
    got = r.results([1, 2], {"score": np.array([0.5, np.inf]), "other": np.array([np.nan, 1.0])}, "score")
    assert json.loads(got[0].output) == {"score": 0.5, "other": None} and got[0].error is None
    assert got[1].score is None and "non-finite" in got[1].error and json.loads(got[1].output)["score"] is None


def test_a_score_only_model_stores_no_output_json():
    """The SQL routines make {"score": ...} from the score as they read it."""
    got = r.results([1, 2], {"score": np.array([0.5, 0.25], np.float32)}, "score", keep_output=False)
    assert [(x.seq, x.score, x.output, x.error) for x in got] == [(1, 0.5, None, None), (2, 0.25, None, None)]
    kept = r.results([1], {"score": np.array([0.5], np.float32)}, "score", keep_output=True)
    assert json.loads(kept[0].output) == {"score": 0.5}
    # several outputs, or a bad score: the output is kept, whatever keep_output says
    several = r.results([1], {"score": np.array([0.5]), "label": np.array([1])}, "score", keep_output=False)
    assert json.loads(several[0].output) == {"score": 0.5, "label": 1}
    bad = r.results([1], {"score": np.array([np.nan])}, "score", keep_output=False)
    assert bad[0].error and json.loads(bad[0].output) == {"score": None}


def test_a_numeric_column_read_as_floats_is_range_checked():
    """bridge.source reads all-number chunks as float64 arrays; a value over float32 still fails."""
    array = np.array([1.0, 1e300, 2.0])
    batch = r.build_batch([1, 2, 3], [array], [r.Input("a", "float32")])
    assert [f.seq for f in batch.failed] == [2] and "out of range for float32" in batch.failed[0].error
    assert batch.inputs["a"].tolist() == [1.0, 2.0]
    clean = np.array([1.5, 2.5])
    converted, errors = r.convert_column(clean, r.Input("a", "float64"))
    assert converted is clean and not errors


def test_nan_in_a_column_read_as_floats_is_a_null():
    batch = r.build_batch([1, 2], [np.array([1.0, np.nan])], [r.Input("a", "float32")])
    assert [f.seq for f in batch.failed] == [2] and "column a: NULL" in batch.failed[0].error
    missing = r.build_batch([1, 2], [np.array([1.0, np.nan])], [r.Input("a", "float32", missing=True)])
    assert not missing.failed and np.isnan(missing.inputs["a"][1])
