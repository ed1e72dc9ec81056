"""Benchmark: N rows x 8 DOUBLE from `CALL mlbridge.predict_scores` to committed scores.

    python bench/predict_scores.py --rows 1000000            private database, own server and bridge
    python bench/predict_scores.py --rows 2000 --dsn DSN --server HOST:PORT --model-base DIR

Prints one JSON line: rows, seconds to queue (the CALL returning its request id), seconds to the
last committed score, rows per second. The model is trained with the trainer on 5,000 rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlbridge.config import Dsn  # noqa: E402
from mlbridge.db import connect  # noqa: E402
from mlbridge.db.install import install  # noqa: E402
from mlbridge.db.local import LocalServer  # noqa: E402
from tests.procs import start_bridge, start_model_server  # noqa: E402

FEATURES = [f"f{i}" for i in range(1, 9)]


def load_rows(dsn: Dsn, rows: int) -> None:
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS bench")
    cur.execute("DROP TABLE IF EXISTS bench.rows8")
    cur.execute("CREATE TABLE bench.rows8 (id INT PRIMARY KEY, "
                + ", ".join(f"{f} DOUBLE NOT NULL" for f in FEATURES) + ", y DOUBLE NOT NULL)")
    rng = random.Random(0)
    weights = [rng.uniform(-1, 1) for _ in FEATURES]
    batch = []
    sql = f"INSERT INTO bench.rows8 VALUES ({', '.join(['%s'] * 10)})"
    for i in range(1, rows + 1):
        x = [rng.gauss(0, 1) for _ in FEATURES]
        batch.append((i, *x, sum(w * v for w, v in zip(weights, x)) + rng.gauss(0, 0.1)))
        if len(batch) == 10000:
            cur.executemany(sql, batch)
            batch = []
    if batch:
        cur.executemany(sql, batch)
    conn.close()


def train(dsn: Dsn, model_base: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mlbridge", "train", "--dsn", str(dsn), "--model-base", str(model_base),
                           "--quiet", "--query", "SELECT * FROM bench.rows8 WHERE id <= 5000", "--label", "y",
                           "--model", "bench8"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def run(dsn: Dsn, rows: int, timeout: float) -> dict:
    conn = connect(dsn)
    cur = conn.cursor()
    started = time.perf_counter()
    cur.callproc("predict_scores", ("bench8", f"SELECT id, {', '.join(FEATURES)} FROM bench.rows8", '{"async": true}'))
    request = next(cur.stored_results()).fetchone()[0]
    queued = time.perf_counter() - started
    cur.callproc("request_wait", (request, timeout))
    for result in cur.stored_results():
        result.fetchall()
    total = time.perf_counter() - started
    cur.execute("SELECT rows_done, rows_failed, status FROM requests WHERE id = %s", (request,))
    done, failed, state = cur.fetchone()
    conn.close()
    return {"rows": rows, "rows_done": done, "rows_failed": failed, "status": state,
            "queue_s": round(queued, 3), "total_s": round(total, 3), "rows_per_s": round(rows / total)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dsn")
    parser.add_argument("--server", help="a running model server serving --model-base")
    parser.add_argument("--model-base")
    parser.add_argument("--bridges", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbridge-bench-")))
        if args.dsn:
            dsn = Dsn.parse(args.dsn)
        else:
            server = LocalServer(tmp / "db")
            dsn = server.start()
            stack.callback(server.stop)
        install(dsn)
        model_base = Path(args.model_base) if args.model_base else tmp / "models"
        load_rows(dsn, args.rows)
        train(dsn, model_base)
        target = args.server or stack.enter_context(start_model_server(model_base, tmp)).target
        for _ in range(args.bridges):
            stack.enter_context(start_bridge(dsn, target, tmp))
        result = run(dsn, args.rows, args.timeout)
    print(json.dumps(result))
    return 0 if result["status"] == "done" and result["rows_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
