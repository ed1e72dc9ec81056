"""The data source's pure parts: query checks, the statistics SQL, cutting blocks into batches."""

import numpy as np
import pytest

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import Columns
from mlbridge_server.trainer.source import (
    ALL,
    HOLDOUT,
    TRAIN,
    Block,
    PassCounts,
    batches,
    normalise_query,
    statistics_sql,
)


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


def test_statistics_sql_wraps_and_quotes():
    sql = statistics_sql("SELECT 1 -- trailing comment", ["a`b", "c"], "y")
    assert "AVG(`a``b`)" in sql and "VAR_POP(`c`)" in sql
    assert "FROM (\nSELECT 1 -- trailing comment\n) AS q" in sql
    assert sql.endswith("WHERE `a``b` IS NOT NULL AND `c` IS NOT NULL AND `y` IS NOT NULL")


class _Blocks:
    """Stands in for QuerySource.blocks: 1,000 rows in uneven blocks, every third held out."""

    def blocks(self, columns, counts):
        start = 0
        for size in (7, 300, 1, 450, 242):
            x = np.arange(start, start + size, dtype=np.float32).reshape(-1, 1)
            y = x[:, 0].astype(np.float64)
            held = (np.arange(start, start + size) % 3) == 0
            counts.rows += size
            yield Block(x, y, held)
            start += size


COLS = Columns(names=("a", "y"), features=(0,), label=1, key=None)


def test_batches_cut_every_row_once_in_full_batches():
    got = list(batches(_Blocks(), COLS, ALL, 64, PassCounts()))
    sizes = [len(y) for _, y in got]
    assert all(s == 64 for s in sizes[:-1]) and sum(sizes) == 1000
    assert np.concatenate([y for _, y in got]).tolist() == list(range(1000))


def test_batches_shuffle_within_the_window_and_split():
    rng = np.random.default_rng(0)
    train = np.concatenate([y for _, y in batches(_Blocks(), COLS, TRAIN, 32, PassCounts(), shuffle_rows=256, rng=rng)])
    held = np.concatenate([y for _, y in batches(_Blocks(), COLS, HOLDOUT, 32, PassCounts())])
    assert sorted(train.tolist()) == [i for i in range(1000) if i % 3]
    assert train.tolist() != sorted(train.tolist())
    assert held.tolist() == [i for i in range(1000) if i % 3 == 0]
