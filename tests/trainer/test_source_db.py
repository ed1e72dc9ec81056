"""The data source and its tf.data Dataset on a real server: rows stream in blocks, so memory
stays flat as rows grow, and parallel readers by key range read every row once."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mlbridge import db
from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.columns import classify_columns
from mlbridge_server.trainer.dataset import query_dataset
from mlbridge_server.trainer.source import QuerySource

# One pass over the Dataset in a fresh process; prints its counts and peak RSS (KiB).
PASS = """
import json, resource, sys
from mlbridge.config import Dsn
from mlbridge_server.tf_runtime import import_quietly
import_quietly()
from mlbridge_server.trainer.dataset import query_dataset
ds = query_dataset(Dsn.parse(sys.argv[1]), sys.argv[2], label="y", batch_size=512, readers=int(sys.argv[3]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = 0
for features, y in ds:
    rows += int(y.shape[0])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "grew_kib": peak - before}))
"""


@pytest.fixture(scope="module")
def digits(tdsn):
    conn = db.connect(tdsn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS tr_digits")
    cur.execute("CREATE TABLE tr_digits (d INT PRIMARY KEY)")
    cur.executemany("INSERT INTO tr_digits VALUES (%s)", [(i,) for i in range(10)])
    conn.close()


def rows_query(n: int) -> str:
    """n synthetic rows (n a multiple of 10,000): key, five features (one text), a 0/1 label."""
    return (
        "SELECT n AS id, n * 0.5e0 AS a, n % 7 AS b, CONCAT('c', n % 11) AS c, n % 13 AS d, n * 1e-3 AS e, "
        "n % 2 AS y FROM (SELECT t1.d + 10 * t2.d + 100 * t3.d + 1000 * t4.d + 10000 * t5.d + 100000 * t6.d AS n "
        "FROM tr_digits t1, tr_digits t2, tr_digits t3, tr_digits t4, tr_digits t5, tr_digits t6 "
        f"WHERE t5.d + 10 * t6.d < {n // 10_000}) AS g"
    )


def one_pass(dsn, n: int, readers: int = 1) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PASS, str(dsn), rows_query(n), str(readers)], capture_output=True, text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_memory_is_flat_as_rows_grow(tdsn, digits):
    small = one_pass(tdsn, 100_000)
    large = one_pass(tdsn, 400_000)
    assert small["rows"] == 100_000 and large["rows"] == 400_000
    # A pass holds a few fetch blocks whatever the row count (BENCHMARKS.md: 10M rows).
    assert large["grew_kib"] < small["grew_kib"] + 16 * 1024, (small, large)


def test_parallel_readers_read_every_row_once(tdsn, digits):
    query = rows_query(30_000) + " UNION ALL SELECT NULL, 1, 1, 'x', 1, 1, 1"  # a NULL key too
    source = QuerySource(tdsn, query)
    columns = classify_columns(source.describe(), "y")
    ranges = source.key_ranges(columns, 3)
    assert len(ranges) == 3 and ranges[0][0] == 0 and ranges[-1][1] == 30_000
    one = [b for b in source.blocks(columns)]
    three = [b for b in source.blocks(columns, ranges=ranges)]
    assert sum(map(len, one)) == sum(map(len, three)) == 30_001
    assert sorted(np.concatenate([b.hashes for b in one])) == sorted(np.concatenate([b.hashes for b in three]))


def test_dataset_parts_follow_the_split(tdsn, digits):
    ds = query_dataset(tdsn, rows_query(10_000), label="y", batch_size=1000, part="test")
    rows = sum(int(y.shape[0]) for _, y in ds)
    assert 900 < rows < 1100
    features, y = next(iter(ds))
    assert features["c"].dtype.name == "string" and features["a"].dtype.name == "float32"
    alone = next(iter(query_dataset(tdsn, rows_query(10_000), batch_size=10)))
    assert set(alone) == {"a", "b", "c", "d", "e", "y"}  # no label: every column but the key
    with pytest.raises(MlbridgeError, match="part must be one of"):
        query_dataset(tdsn, rows_query(10_000), part="holdout")
