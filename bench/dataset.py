"""`make bench-dataset`: the trainer's tf.data Dataset streaming a big table out of MySQL.

    python bench/dataset.py --rows 10000000          the figures in BENCHMARKS.md
    python bench/dataset.py --rows 20000 --quick     the smoke that `make test` runs

On a private server, a table of N rows (id INT primary key, 6 DOUBLE, one VARCHAR, a 0/1
label) is iterated with `query_dataset` in a fresh process per run, which prints:

- the peak RSS the pass adds to the process (after TensorFlow is loaded and the first batch
  has come), which must not grow with the rows: the Dataset never holds the result;
- the seconds from the first request for a batch to the last batch;
- rows per second with 1 reader and with 2 and 4 readers over slices of the key's range.

Prints a table and one JSON line last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from private import private_database  # noqa: E402 - bench/private.py

import mlbridge  # noqa: E402,F401 - loads mysql-connector's C extension first
from mlbridge.config import Dsn  # noqa: E402
from mlbridge.db import connect  # noqa: E402

QUERY = "SELECT id, a, b, c, d, e, f, city, y FROM bench.stream"

PASS = """
import json, resource, sys, time
from mlbridge.config import Dsn
from mlbridge_server.tf_runtime import import_quietly
import_quietly()
from mlbridge_server.trainer.dataset import query_dataset
ds = query_dataset(Dsn.parse(sys.argv[1]), sys.argv[2], label="y", batch_size=4096, readers=int(sys.argv[3]))
started = time.monotonic()
it = iter(ds)
features, y = next(it)
rows = int(y.shape[0])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for features, y in it:
    rows += int(y.shape[0])
seconds = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                  "grew_mb": round((peak - before) / 1024, 1), "peak_mb": round(peak / 1024, 1)}))
"""


def load(dsn: Dsn, rows: int, folder: Path) -> None:
    """The table, filled with LOAD DATA LOCAL from a file written a million rows at a time."""
    conn = connect(dsn, allow_local_infile_in_path=str(folder))
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS bench")
    cur.execute("DROP TABLE IF EXISTS bench.stream")
    cur.execute("CREATE TABLE bench.stream (id INT PRIMARY KEY, a DOUBLE, b DOUBLE, c DOUBLE, d DOUBLE, e DOUBLE, "
                "f DOUBLE, city VARCHAR(16), y TINYINT)")
    rng = np.random.default_rng(0)
    path = folder / "stream.tsv"
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        x = rng.normal(size=(n, 6))
        city = rng.integers(0, 50, size=n)
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        with path.open("w") as out:
            for i in range(n):
                out.write(f"{start + i + 1}\t" + "\t".join(f"{v:.6f}" for v in x[i]) + f"\tcity{city[i]}\t{y[i]}\n")
        cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE bench.stream")
    conn.commit()
    conn.close()


def one_pass(dsn: Dsn, readers: int) -> dict:
    done = subprocess.run([sys.executable, "-c", PASS, str(dsn), QUERY, str(readers)], capture_output=True,
                          text=True, cwd=REPO, timeout=7200)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--readers", default="1,2,4", help="reader counts to compare")
    parser.add_argument("--quick", action="store_true", help="a smoke: readers 1 and 2 only")
    args = parser.parse_args()
    counts = [1, 2] if args.quick else [int(r) for r in args.readers.split(",")]
    result: dict = {"rows": args.rows}
    with contextlib.ExitStack() as stack:
        tmp, server, dsn = private_database(stack)
        load(dsn, args.rows, tmp)
        for readers in counts:
            result[f"readers_{readers}"] = one_pass(dsn, readers)
            print(f"dataset: {readers} reader(s): {result[f'readers_{readers}']}", file=sys.stderr, flush=True)
    print("| readers | rows | seconds | rows/s | peak RSS added (MB) |\n| ---: | ---: | ---: | ---: | ---: |")
    for readers in counts:
        r = result[f"readers_{readers}"]
        print(f"| {readers} | {r['rows']:,} | {r['seconds']} | {r['rows_per_s']:,} | {r['grew_mb']} |")
    print(json.dumps(result))
    return 0 if all(result[f"readers_{r}"]["rows"] == args.rows for r in counts) else 1


if __name__ == "__main__":
    sys.exit(main())
