"""The data source's pure parts: query checks, and values converted as the bridge converts them."""

import datetime as dt
import decimal
import re

import numpy as np
import pytest

from mlbridge.bridge.rows import Input, ValueRefused, convert_value
from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import CATEGORY, DATE, NUMBER, SET
from mlbridge_server.trainer.source import Block, concat, convert, convert_label, normalise_query


@pytest.mark.parametrize(
    "query",
    ["SELECT 1", "  select a from t ;; ", "WITH x AS (SELECT 1) SELECT * FROM x", "(SELECT 1)",
     "-- note\nSELECT 1", "/* hint */ SELECT 1", "# note\nselect 1"],
)
def test_selects_pass(query):
    assert not normalise_query(query).endswith(";")


@pytest.mark.parametrize("query", ["DELETE FROM t", "DROP TABLE t", "SHOW TABLES", "CALL p()", "-- SELECT\nDELETE FROM t"])
def test_other_statements_are_refused(query):
    with pytest.raises(MlbridgeError, match="must be a SELECT"):
        normalise_query(query)


def test_empty_query_is_refused():
    with pytest.raises(MlbridgeError, match="query is empty"):
        normalise_query("  ")


def test_numbers_are_float32_with_nan_for_null():
    out = convert([1, decimal.Decimal("2.50"), None, True], NUMBER)
    assert out.dtype == np.float32
    assert out[:2].tolist() == [1.0, 2.5] and np.isnan(out[2]) and out[3] == 1.0


def test_numbers_read_as_the_bridge_reads_them():
    """Text in a numeric column (the connector gives numbers for numeric types; text would be a
    driver's doing) is taken only when it is a complete number, as the bridge takes it."""
    out = convert(["1", "-1.5", ".5", "1e3", "+2", b"7", None, 3, decimal.Decimal("0.25")], NUMBER, "x")
    assert out[:6].tolist() == [1.0, -1.5, 0.5, 1000.0, 2.0, 7.0] and np.isnan(out[6]) and out[7:].tolist() == [3, 0.25]
    assert convert_label(["1", None, 0], NUMBER, "y")[[0, 2]].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("text", ["1_000", " 1", "1 ", "0x10", "nan", "inf", "1e", ".", "", "\u0661\u0662"])
def test_text_that_is_not_a_complete_number_is_an_error_naming_the_column(text):
    fix = "TRIM()" if text.strip() == "1" else "plain decimal number"
    for values in ([1.0, text], [None, text], [text]):
        with pytest.raises(MlbridgeError, match=f"^mlbridge: the column 'x' holds the text {re.escape(repr(text))}, "
                                                f"which is not a number: .*{re.escape(fix)}"):
            convert(values, NUMBER, "x")
    with pytest.raises(MlbridgeError, match="the column 'y' holds the text"):
        convert_label([1, text], NUMBER, "y")
    with pytest.raises(ValueRefused):  # and the bridge refuses it to serve
        convert_value(text, Input("x", "float32"))


def test_text_values_match_what_the_bridge_sends():
    """The model is trained on exactly what it is served: the bridge's conversion of each value."""
    values = ["red", None, dt.date(2024, 5, 1), dt.datetime(2024, 5, 1, 7, 8, 9, 120000), "p,q"]
    trained = convert(values, CATEGORY).tolist()
    served = [convert_value(v, Input("c", "string", missing=True)) for v in values]
    assert trained == [v.decode() if isinstance(v, bytes) else v for v in served]
    assert trained[1] == "" and trained[2] == "2024-05-01" and trained[3] == "2024-05-01T07:08:09.120000"


def test_sets_are_members_joined_by_commas():
    assert convert([{"q", "p"}, set(), None], SET).tolist() == ["p,q", "", ""]
    assert convert([dt.date(2020, 1, 2)], DATE).tolist() == ["2020-01-02"]


def test_labels_keep_null_apart():
    assert convert_label(["a", None], CATEGORY).tolist() == ["a", None]
    assert np.isnan(convert_label([1, None], NUMBER)[1])


def test_blocks_take_and_concat():
    a = Block({"x": np.array([1.0, 2.0])}, np.array([0.0, 1.0]), np.array([0, 1], np.int8), np.array([5, 6]))
    b = Block({"x": np.array([3.0])}, np.array([1.0]), np.array([2], np.int8), np.array([7]))
    both = concat([a, b])
    assert both.features["x"].tolist() == [1.0, 2.0, 3.0] and both.hashes.tolist() == [5, 6, 7]
    assert both.take(both.part > 0).features["x"].tolist() == [2.0, 3.0]
