"""`make bench-fairness`: one account's huge request beside another account's small call.

    python bench/fairness.py --rows 1000000      private database, own model server and bridge
    python bench/fairness.py --rows 5000 --quick   the smoke that `make test` runs

Account `heavy` queues --rows rows with predict_scores (async); right after, account `light`
scores 50 rows with a waiting predict_scores. Measures light's call alone (median of 3), light's
call while heavy's rows are being scored, and heavy's request from CALL to its last score. With
fair claiming (accounts take turns, migration 0008) light's call waits for about one chunk of
heavy's, not for all of them. Then heavy tries --concurrent more requests at once, and the
per-account limit (max_requests_in_flight) says how many it takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import mysql.connector  # noqa: E402
from private import private_database  # noqa: E402 - bench/private.py

from bench import QUICK_EPOCHS, SELECT, call, load_rows, train, wait_status  # noqa: E402 - bench/bench.py
from tests.accounts import create_account  # noqa: E402
from tests.procs import start_bridge, start_model_server  # noqa: E402

SMALL = "SELECT id, f1, f2, f3, f4, f5, f6, f7, f8 FROM bench.rows8 WHERE id <= 50"


def as_account(dsn, user: str):
    return mysql.connector.connect(host=dsn.host, port=dsn.port, user=user, password="pw", database=dsn.database,
                                   autocommit=True)


def timed_call(conn, query: str) -> float:
    cur = conn.cursor()
    started = time.perf_counter()
    rows = call(cur, "predict_scores", ("bench8", query, '{"timeout": 3600}'))
    elapsed = time.perf_counter() - started
    assert len(rows) == 50 and all(r[3] is None for r in rows), rows[:3]
    cur.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrent", type=int, default=30)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke: fewer concurrent calls, a model trained for few epochs")
    args = parser.parse_args()
    if args.quick:
        args.concurrent = 4
    result: dict = {"rows": args.rows}
    with contextlib.ExitStack() as stack:
        tmp, _server, dsn = private_database(stack)
        load_rows(dsn, args.rows)
        train(dsn, tmp / "models", QUICK_EPOCHS if args.quick else None)
        model_server = stack.enter_context(start_model_server(tmp / "models", tmp))
        stack.enter_context(start_bridge(dsn, model_server.target, tmp))
        for user in ("heavy", "light"):
            create_account(dsn, user, grants=("SELECT ON bench.rows8",))
        light, heavy = as_account(dsn, "light"), as_account(dsn, "heavy")
        timed_call(light, SMALL)  # warm: the bridge loads the model
        result["light_alone_s"] = round(statistics.median(timed_call(light, SMALL) for _ in range(3)), 3)

        cur = heavy.cursor()
        started = time.perf_counter()
        request = call(cur, "predict_scores", ("bench8", SELECT, '{"async": true}'))[0][0]
        result["heavy_queue_s"] = round(time.perf_counter() - started, 3)
        result["light_beside_heavy_s"] = round(timed_call(light, SMALL), 3)
        root = stack.enter_context(contextlib.closing(mysql.connector.connect(
            host=dsn.host, port=dsn.port, user="root", database=dsn.database, autocommit=True)))
        state = wait_status(root.cursor(), request, 3600)
        result["heavy_total_s"] = round(time.perf_counter() - started, 3)
        result["heavy_status"] = state[0]

        # many requests of one account at once: the limit refuses those past max_requests_in_flight
        outcomes: list[str] = []

        def one() -> None:
            conn = as_account(dsn, "heavy")
            try:
                call(conn.cursor(), "predict_scores", ("bench8", SELECT + " WHERE id <= 2000", '{"async": true}'))
                outcomes.append("queued")
            except mysql.connector.Error as exc:
                outcomes.append("refused" if "requests in flight" in exc.msg else exc.msg)
            finally:
                conn.close()

        threads = [threading.Thread(target=one) for _ in range(args.concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["concurrent"] = {k: outcomes.count(k) for k in set(outcomes)}
        result["light_beside_many_s"] = round(timed_call(light, SMALL), 3)
    print(f"light's 50-row call: alone {result['light_alone_s']} s, beside heavy's {args.rows} rows "
          f"{result['light_beside_heavy_s']} s (heavy's request took {result['heavy_total_s']} s); "
          f"heavy's {args.concurrent} concurrent calls: {result['concurrent']}, light then "
          f"{result['light_beside_many_s']} s")
    print(json.dumps(result))
    return 0 if result["heavy_status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
