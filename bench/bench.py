"""`make bench`: mlbridge beside its peers, in one run, on one server, on one table.

    python bench/bench.py --rows 1000000         private database, own model server and bridge
    python bench/bench.py --rows 3000 --quick    the smoke that `make test` runs

The table is N rows x 8 DOUBLE (bench.rows8), the model an 8-input regression MLP trained by
`mlbridge train` on 5,000 of them. In order, it measures:

- the peers, as plain programs a user writes without mlbridge (bench/peers/): the direct program
  (binary-protocol read, SavedModel in-process, LOAD DATA LOCAL) and the tutorial pipeline
  (SELECT INTO OUTFILE, make_csv_dataset, executemany);
- the CPU the idle stack uses (database, model server, bridge) over --idle-seconds;
- `predict_scores` (async, waited for): from CALL to every score committed, with the queueing
  split into staging (the caller's SELECT into a temporary table, measured on its own) and copy,
  and the bridge's seconds per stage from its metrics (claim, read, convert, predict, write;
  summed over its threads, which overlap);
- `predict_table`: until the output table is filled, split into scoring and the output copy;
- `predict_row` latency: back to back, and spaced --spaced-ms apart, and while a bulk request is
  being scored;
- the bridge's peak RSS.

Prints a table, the ratios (mlbridge / direct, tutorial / mlbridge), and one JSON line last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from private import private_database  # noqa: E402 - bench/private.py

import mlbridge  # noqa: E402,F401 - loads mysql-connector's C extension first
from mlbridge.config import Dsn  # noqa: E402
from mlbridge.db import connect  # noqa: E402
from tests.procs import free_port, start_bridge, start_model_server  # noqa: E402

FEATURES = [f"f{i}" for i in range(1, 9)]
SELECT = f"SELECT id, {', '.join(FEATURES)} FROM bench.rows8"
QUICK_EPOCHS = 3  # --quick: the model trains for at most this many epochs per network


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


def train(dsn: Dsn, model_base: Path, epochs: int | None = None) -> Path:
    """`mlbridge train` of bench8 on the first 5,000 rows; `epochs`: at most that many per network
    (the smokes' few, which make a model as fast to call as the full one, in seconds)."""
    done = subprocess.run([sys.executable, "-m", "mlbridge", "train", "--dsn", str(dsn), "--model-base", str(model_base),
                           "--quiet", "--query", "SELECT * FROM bench.rows8 WHERE id <= 5000", "--label", "y",
                           "--model", "bench8", *(["--epochs", str(epochs)] if epochs else [])],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return max((model_base / "bench8").iterdir(), key=lambda p: int(p.name))


def peer(name: str, dsn: Dsn, model: Path) -> dict:
    data = Dsn(**{**dsn.__dict__, "database": "bench"})
    done = subprocess.run([sys.executable, str(REPO / "bench" / "peers" / f"{name}.py"), "--dsn", str(data), "--model",
                           str(model), "--table", "bench.rows8", "--out", f"bench.{name}_scores"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- measuring processes ----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bridge_stages(port: int) -> dict[str, float]:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("mlbridge_bridge_stage_seconds_total{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            found[stage] = float(line.rsplit(" ", 1)[1])
    return found


# -- the SQL entry points ------------------------------------------------------------------------

def call(cur, proc: str, args: tuple) -> list[tuple]:
    cur.callproc(proc, args)
    rows = []
    for result in cur.stored_results():  # noqa - the method form works on every 8.x and 9.x connector
        rows.extend(result.fetchall())
    return rows


def wait_status(cur, request: int, timeout: float) -> tuple:
    deadline = time.monotonic() + timeout
    while True:
        cur.execute("SELECT status, rows_done, rows_failed FROM requests WHERE id = %s", (request,))
        status = cur.fetchone()
        if status[0] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            return status
        time.sleep(0.005)


def bench_predict_scores(dsn: Dsn, metrics_port: int, timeout: float) -> dict:
    conn = connect(dsn)
    cur = conn.cursor()
    # staging alone: the caller's SELECT into the session's temporary table, as predict_scores runs it
    cur.execute("SELECT JSON_EXTRACT(inputs, '$[*].name') FROM models WHERE name = 'bench8' ORDER BY version DESC LIMIT 1")
    inputs = cur.fetchone()[0]
    started = time.perf_counter()
    call(cur, "_stage_query", (SELECT, "id", inputs, "bench8"))
    staging = time.perf_counter() - started
    cur.execute("DROP TEMPORARY TABLE IF EXISTS mlbridge_scratch.predict_input")
    before = bridge_stages(metrics_port)
    started = time.perf_counter()
    request = call(cur, "predict_scores", ("bench8", SELECT, '{"async": true}'))[0][0]
    queued = time.perf_counter() - started
    state, done, failed = wait_status(cur, request, timeout)
    total = time.perf_counter() - started
    after = bridge_stages(metrics_port)
    conn.close()
    return {"request": request, "status": state, "rows_done": done, "rows_failed": failed,
            "queue_s": round(queued, 3), "staging_s": round(staging, 3), "copy_s": round(max(0.0, queued - staging), 3),
            "bridge_s": round(total - queued, 3), "total_s": round(total, 3),
            "bridge_stages": {k: round(after.get(k, 0) - before.get(k, 0), 3) for k in after}}


def bench_predict_table(dsn: Dsn, timeout: float) -> dict:
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS bench.table_scores")
    started = time.perf_counter()
    request = call(cur, "predict_table", ("bench8", "bench.rows8", "bench.table_scores", '{"async": true}'))[0][0]
    queued = time.perf_counter() - started
    state, done, failed = wait_status(cur, request, timeout)
    scored = time.perf_counter() - started
    call(cur, "request_wait", (request, timeout))
    total = time.perf_counter() - started
    cur.execute("SELECT COUNT(*) FROM bench.table_scores")
    written = cur.fetchone()[0]
    conn.close()
    return {"status": state, "rows_done": done, "rows_failed": failed, "rows_written": written,
            "queue_s": round(queued, 3), "scored_s": round(scored, 3), "output_s": round(total - scored, 3),
            "total_s": round(total, 3)}


def _row_args(cur) -> tuple:
    cur.execute(f"SELECT {', '.join(FEATURES)} FROM bench.rows8 WHERE id = 1")
    values = cur.fetchone()
    return ("bench8", json.dumps(dict(zip(FEATURES, values))))


def call_row(cur, args: tuple) -> list[tuple]:
    """`CALL mlbridge.predict_row(...)` as an application sends it: one statement (callproc would
    add round trips of its own for the arguments)."""
    cur.execute("CALL predict_row(%s, %s)", args)
    rows = cur.fetchall()
    while cur.nextset():
        pass
    return rows


def latencies(dsn: Dsn, calls: int, spacing: float = 0.0) -> dict:
    conn = connect(dsn)
    cur = conn.cursor()
    args = _row_args(cur)
    call_row(cur, args)  # warm
    seen = []
    for _ in range(calls):
        started = time.perf_counter()
        rows = call_row(cur, args)
        seen.append((time.perf_counter() - started) * 1000)
        if rows[0][2] is not None:
            raise SystemExit(f"predict_row failed: {rows[0][2]}")
        if spacing:
            time.sleep(spacing)
    conn.close()
    seen.sort()
    return {"calls": calls, "p50_ms": round(statistics.median(seen), 2),
            "p99_ms": round(seen[min(len(seen) - 1, int(len(seen) * 0.99))], 2), "max_ms": round(seen[-1], 2)}


def latencies_under_load(dsn: Dsn, calls: int, timeout: float) -> dict:
    conn = connect(dsn)
    cur = conn.cursor()
    request = call(cur, "predict_scores", ("bench8", SELECT, '{"async": true}'))[0][0]
    found = latencies(dsn, calls, 0.05)
    state = wait_status(cur, request, timeout)[0]
    conn.close()
    return {**found, "bulk_status_after": state}


def idle_cpu(pids: dict[str, int], seconds: float) -> dict:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return {"seconds": seconds, "percent_of_a_core": round(100 * sum(used.values()) / seconds, 2),
            "by_process": {name: round(100 * v / seconds, 2) for name, v in used.items()}}


# -- the report ----------------------------------------------------------------------------------

def report(r: dict) -> str:
    direct, tutorial, ps, pt = r.get("direct"), r.get("tutorial"), r["predict_scores"], r["predict_table"]
    lines = [f"rows: {r['rows']:,}   bridges: {r['bridges']}", "",
             "| path | seconds | breakdown |", "| --- | ---: | --- |"]
    if direct:
        lines.append(f"| direct program | {direct['total_s']:.2f} | "
                     + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in direct["stages"].items()) + " |")
    if tutorial:
        lines.append(f"| tutorial pipeline | {tutorial['total_s']:.2f} | "
                     + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in tutorial["stages"].items()) + " |")
    stages = ", ".join(f"{k} {v:.2f}" for k, v in ps["bridge_stages"].items())
    lines.append(f"| predict_scores | {ps['total_s']:.2f} | queue {ps['queue_s']:.2f} (staging {ps['staging_s']:.2f}, "
                 f"copy {ps['copy_s']:.2f}), bridge {ps['bridge_s']:.2f} (thread-seconds: {stages}) |")
    lines.append(f"| predict_table | {pt['total_s']:.2f} | queue {pt['queue_s']:.2f}, scored at {pt['scored_s']:.2f}, "
                 f"output copy {pt['output_s']:.2f} |")
    lines.append("")
    for name in ("row_back_to_back", "row_spaced", "row_under_load"):
        x = r[name]
        lines.append(f"predict_row {name[4:].replace('_', ' ')}: {x['calls']} calls, p50 {x['p50_ms']} ms, "
                     f"p99 {x['p99_ms']} ms, max {x['max_ms']} ms")
    idle = r["idle"]
    lines.append(f"idle stack: {idle['percent_of_a_core']}% of a core over {idle['seconds']:.0f} s "
                 f"({', '.join(f'{k} {v}%' for k, v in idle['by_process'].items())})")
    lines.append(f"bridge peak RSS: {r['bridge_peak_rss_mb']:.0f} MB")
    if direct:
        lines.append(f"ratios: predict_scores / direct {ps['total_s'] / direct['total_s']:.2f}x, "
                     f"predict_table / direct {pt['scored_s'] / direct['total_s']:.2f}x "
                     f"(with the output copy {pt['total_s'] / direct['total_s']:.2f}x)"
                     + (f", tutorial / predict_scores {tutorial['total_s'] / ps['total_s']:.2f}x" if tutorial else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bridges", type=int, default=1)
    parser.add_argument("--row-calls", type=int, default=1000)
    parser.add_argument("--spaced-calls", type=int, default=100)
    parser.add_argument("--spaced-ms", type=float, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--no-peers", action="store_true", help="skip the direct program and the tutorial pipeline")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke: few calls, short idle, no tutorial, at most {QUICK_EPOCHS} epochs of training")
    parser.add_argument("--scores-only", action="store_true",
                        help="predict_scores and the bridge's peak RSS only (for runs at 10M rows)")
    args = parser.parse_args()
    if args.quick:
        args.row_calls, args.spaced_calls, args.spaced_ms, args.idle_seconds = 20, 5, 20, 2
    result: dict = {"rows": args.rows, "bridges": args.bridges}
    with contextlib.ExitStack() as stack:
        tmp, server, dsn = private_database(stack)
        load_rows(dsn, args.rows)
        model = train(dsn, tmp / "models", QUICK_EPOCHS if args.quick else None)
        if not args.no_peers:
            result["direct"] = peer("direct", dsn, model)
            if not args.quick:
                result["tutorial"] = peer("tutorial", dsn, model)
        model_server = stack.enter_context(start_model_server(tmp / "models", tmp))
        metrics_port = free_port()
        bridges = [stack.enter_context(start_bridge(dsn, model_server.target, tmp, "--metrics-port", str(metrics_port)))]
        for _ in range(args.bridges - 1):
            bridges.append(stack.enter_context(start_bridge(dsn, model_server.target, tmp)))
        result["row_back_to_back"] = latencies(dsn, 5)  # warms the stack: the bridge has the model
        if args.scores_only:
            result["predict_scores"] = bench_predict_scores(dsn, metrics_port, args.timeout)
            result["bridge_peak_rss_mb"] = round(max(peak_rss_mb(b.proc.pid) for b in bridges), 1)
            print(json.dumps(result))
            return 0 if result["predict_scores"]["status"] == "done" else 1
        time.sleep(1)
        pids = {"database": server.pid(), "model server": model_server.proc.pid,
                **{f"bridge {i + 1}": b.proc.pid for i, b in enumerate(bridges)}}
        result["idle"] = idle_cpu(pids, args.idle_seconds)
        result["predict_scores"] = bench_predict_scores(dsn, metrics_port, args.timeout)
        result["predict_table"] = bench_predict_table(dsn, args.timeout)
        result["row_back_to_back"] = latencies(dsn, args.row_calls)
        result["row_spaced"] = latencies(dsn, args.spaced_calls, args.spaced_ms / 1000)
        result["row_under_load"] = latencies_under_load(dsn, max(5, args.spaced_calls // 2), args.timeout)
        result["bridge_peak_rss_mb"] = round(max(peak_rss_mb(b.proc.pid) for b in bridges), 1)
    print(report(result))
    print(json.dumps(result))
    ok = (result["predict_scores"]["status"] == "done" and result["predict_scores"]["rows_failed"] == 0
          and result["predict_table"]["rows_written"] == args.rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
