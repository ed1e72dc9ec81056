"""`make bench-serving` (and the second half of `make bench`): the model server beside the
in-process call of the same SavedModel.

    python bench/serving.py                     trains the bridge benchmark's model on a private database
    python bench/serving.py --model DIR         a SavedModel already made (its inputs are read from the server)
    python bench/serving.py --quick             a smoke: few calls, short runs, each measure once
    python bench/serving.py --quick --clients 2 --single-clients 4   the smoke that `make test` runs

The model is the one bench/bench.py uses: the 8-input regression that `mlbridge train` makes from
5,000 rows of bench.rows8. Every client and the in-process baseline run in processes of their
own (threads in one Python process would share its GIL and measure that instead). Measured:

- (a) batch 1,024, one client: median Predict latency over gRPC minus the median latency of
  the in-process call, on the same rows (target: at most 1 ms). The in-process call is
  TensorFlow's own: ``tf.saved_model.load(path).signatures["serving_default"](**tensors)``, the
  outputs made numpy arrays. The server calls the same function through its flat entry
  (servable.SignatureCall), which skips TensorFlow's Python argument binding; the same flat call
  in-process is measured too ("in-process, flat call"), so that the report shows what gRPC adds on
  its own. The in-process workers run TensorFlow as the server does (serving/tensorflow_env.py:
  oneDNN off unless TF_ENABLE_ONEDNN_OPTS is set);
- (b) batch 1,024, 4 concurrent clients (--clients): the server's rows/s as a % of in-process rows/s (one
  process calling `Servable.run` back to back) (target: at least 35%);
- (c) single-row Predict, one client, back to back: p50 and p99;
- (a), (b) and (c) also against a server with ``--model-isolation process`` (each version in a
  model process of its own, a hop there and back on each call; batching on), beside the default
  server (versions in the server process);
- (d) single-row Predict, 8 concurrent clients (--single-clients): rows/s, p50 and p99, with the server's dynamic
  batching on and off.

The machine's load drifts while the benchmark runs (other work shares its cores), so figures that
are compared are measured interleaved: the three servers (batching on, batching off, model
isolation process) run from the start, and each measure runs twice, in order then in reverse (A B B A), half its work each time, pooled
(--quick: once each, in order, which makes the same measures with half the processes).

Protocols: each client is made by a factory from CLIENT_FACTORIES, chosen with --protocol; a
factory takes (target, model name, input specs) and returns an object with ``predict(inputs)``
and ``close()``. A client of another protocol is added by registering its factory there.

Prints a table, then one JSON line last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MODEL = "bench8"


# -- clients, one per protocol ----------------------------------------------------------------------

class TFServingClient:
    """TF Serving's PredictionService/Predict through mlbridge's light client."""

    def __init__(self, target: str, model: str, inputs: dict[str, str]):
        from mlbridge.serving_client import ModelServerClient

        self.model = model
        self.client = ModelServerClient(target, timeout=120)

    def predict(self, inputs: dict) -> dict:
        return self.client.predict(self.model, None, inputs)

    def close(self) -> None:
        self.client.close()


class V2Client(TFServingClient):
    """The Open Inference Protocol's GRPCInferenceService/ModelInfer through mlbridge's light client."""

    def __init__(self, target: str, model: str, inputs: dict[str, str]):
        from mlbridge.v2_client import InferenceClient

        self.model = model
        self.client = InferenceClient(target, timeout=120)


# protocol name -> factory(target, model, {input: dtype name}) -> client with predict() and close()
CLIENT_FACTORIES: dict[str, Callable[[str, str, dict[str, str]], Any]] = {
    "tfserving": TFServingClient,
    "v2": V2Client,
}


def make_inputs(specs: dict[str, str], rows: int, seed: int = 0) -> dict:
    """Rows for the model: standard normal values in each input's dtype, shape [rows]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(rows).astype(dtype) for name, dtype in sorted(specs.items())}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(latencies_ms: list[float]) -> dict:
    return {"calls": len(latencies_ms), "p50_ms": round(statistics.median(latencies_ms), 3),
            "p99_ms": round(percentile(latencies_ms, 0.99), 3)}


# -- the worker processes ------------------------------------------------------------------------

def _timed(call: Callable[[], Any], calls: int, seconds: float) -> tuple[list[float], float]:
    """Run ``call`` ``calls`` times, or for ``seconds`` when calls is 0: (each call's ms, elapsed s)."""
    latencies = []
    started = time.perf_counter()
    deadline = started + seconds
    while (len(latencies) < calls) if calls else (time.perf_counter() < deadline):
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, time.perf_counter() - started


def _go_when_told() -> None:
    """Tell the parent this process is warm, then wait for its word: concurrent workers start together."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go from the benchmark")


def worker(args: argparse.Namespace) -> int:
    specs = json.loads(args.inputs)
    inputs = make_inputs(specs, args.rows, args.seed)
    if args.protocol in ("inprocess", "inprocess-flat"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mlbridge_server.serving.servable import Servable

        servable = Servable(MODEL, 1, args.model)
        arrays = servable_inputs(servable, inputs)
        signature = servable.signature_call("serving_default")
        if args.protocol == "inprocess-flat":
            if not signature.verify(arrays):
                raise SystemExit("the flat call does not answer as TensorFlow's call does on these rows")
            call: Callable[[], Any] = lambda: signature(arrays)  # noqa: E731
        else:
            call = lambda: signature.public(arrays)  # noqa: E731  TensorFlow's own call
        close: Callable[[], None] = lambda: None  # noqa: E731
    else:
        client = CLIENT_FACTORIES[args.protocol](args.target, MODEL, specs)
        call = lambda: client.predict(inputs)  # noqa: E731
        close = client.close
    for _ in range(args.warmup):
        call()
    _go_when_told()
    latencies, elapsed = _timed(call, args.calls, args.seconds)
    close()
    print(json.dumps({"latencies_ms": latencies, "elapsed_s": elapsed, "rows": args.rows * len(latencies)}))
    return 0


def servable_inputs(servable: Any, inputs: dict) -> dict:
    """The inputs as the server hands them to Servable.run: decoded numpy arrays of the signature's dtypes."""
    from mlbridge.tensors import from_tensor_proto, to_tensor_proto

    signature = servable.signature_defs.signature_def["serving_default"]
    return {k: from_tensor_proto(to_tensor_proto(v, signature.inputs[k].dtype)) for k, v in inputs.items()}


def run_workers(count: int, protocol: str, *, target: str = "", model: str = "", specs: dict, rows: int,
                calls: int = 0, seconds: float = 0.0, warmup: int = 20) -> dict:
    """``count`` worker processes started together: their latencies, rows and the longest one's seconds."""
    command = [sys.executable, str(Path(__file__).resolve()), "worker", "--protocol", protocol, "--target", target,
               "--model", model, "--inputs", json.dumps(specs), "--rows", str(rows), "--calls", str(calls),
               "--seconds", str(seconds), "--warmup", str(warmup)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # The in-process baseline runs TensorFlow as the server does (oneDNN off unless set).
    from mlbridge_server.serving.tensorflow_env import prepare

    prepare(env)
    # Each worker's stderr (TensorFlow's start-up lines among them) goes to a file, shown if it fails.
    logs = [tempfile.TemporaryFile("w+") for _ in range(count)]
    procs = [subprocess.Popen([*command, "--seed", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=log, text=True, env=env, cwd=REPO) for i, log in enumerate(logs)]

    def failed(i: int, what: str) -> SystemExit:
        procs[i].kill()
        procs[i].wait()
        logs[i].seek(0)
        return SystemExit(f"a {protocol} worker {what} (exit {procs[i].returncode}):\n{logs[i].read()[-3000:]}")

    try:
        for i, proc in enumerate(procs):
            if proc.stdout.readline().strip() != "ready":
                raise failed(i, "failed to start")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for i, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise failed(i, "failed")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc, log in zip(procs, logs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return {"latencies_ms": [ms for r in results for ms in r["latencies_ms"]], "clients": count, "rows": rows,
            "rows_done": sum(r["rows"] for r in results), "elapsed_s": max(r["elapsed_s"] for r in results)}


def pooled(parts: list[dict]) -> dict:
    """One figure from several runs of the same measure: latencies pooled, rows/s over their summed time."""
    latencies = [ms for part in parts for ms in part["latencies_ms"]]
    rows_per_s = sum(p["rows_done"] for p in parts) / sum(p["elapsed_s"] for p in parts)
    return {**summary(latencies), "rows_per_s": round(rows_per_s, 1), "clients": parts[0]["clients"],
            "rows": parts[0]["rows"]}


def interleaved(measures: dict[str, Callable[[], dict]], passes: int = 2) -> dict[str, dict]:
    """Each measure run twice, in order and then in reverse (A B B A), each time with half its work,
    and pooled: the machine's load drifts (other work shares its 2 cores), and measures compared with
    each other should see the same drift. `passes` 1: once each, in order (A B), for a smoke; the
    callers size each run's work by `passes`."""
    runs: dict[str, list[dict]] = {name: [] for name in measures}
    for name in [*measures, *reversed(measures)][:len(measures) * passes]:
        runs[name].append(measures[name]())
    return {name: pooled(parts) for name, parts in runs.items()}


# -- the model and the server -------------------------------------------------------------------

def trained_model(stack: contextlib.ExitStack) -> Path:
    """The bridge benchmark's model: 5,000 rows of bench.rows8 in a private database, `mlbridge train`."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))  # first: "bench" is bench/bench.py here, not the folder
    from private import private_database

    from bench import load_rows, train

    tmp, _server, dsn = private_database(stack)
    load_rows(dsn, 5000)
    return train(dsn, tmp / "trained")


@contextlib.contextmanager
def model_server(model: Path, workdir: Path, batching: bool, isolation: str = "none"):
    """`mlbridge serve` on a model base holding ``model`` as bench8 version 1, batching on or off,
    each version in the server process (isolation "none", the default) or in a model process ("process")."""
    sys.path.insert(0, str(REPO))
    from tests.procs import start_model_server

    base = workdir / f"base-{'on' if batching else 'off'}-{isolation}"
    shutil.copytree(model, base / MODEL / "1")
    env = {"MLBRIDGE_SERVING_ENABLE_BATCHING": "1" if batching else "0",
           "MLBRIDGE_SERVING_MODEL_ISOLATION": isolation}
    with start_model_server(base, workdir, env=env) as process:
        yield process


def input_specs(target: str) -> dict[str, str]:
    from mlbridge.serving_client import ModelServerClient

    with ModelServerClient(target, timeout=60) as client:
        signature = client.metadata(MODEL)
    return {spec.name: spec.dtype for spec in signature.inputs}


# -- the report ----------------------------------------------------------------------------------

def report(r: dict) -> str:
    a, b, c, d = r["batch_1024"], r["concurrent_1024"], r["single_row"], r["concurrent_single_row"]
    lines = [f"model: {r['model']} ({len(r['inputs'])} inputs), protocol: {r['protocol']}", "",
             "| measure | in-process | server | target |", "| --- | ---: | ---: | --- |",
             f"| (a) batch 1,024, 1 client: median latency | {a['inprocess']['p50_ms']:.3f} ms | "
             f"{a['server']['p50_ms']:.3f} ms (+{a['added_ms']:.3f} ms) | added <= 1 ms |",
             f"| (a) ... in-process, flat call (as the server calls) | {a['inprocess_flat']['p50_ms']:.3f} ms | "
             f"+{a['added_to_flat_ms']:.3f} ms | |",
             f"| (a) ... server with --model-isolation process | | {a['server_process']['p50_ms']:.3f} ms "
             f"(+{a['added_ms_process']:.3f} ms) | added <= 1 ms |",
             f"| (b) batch 1,024, {b['server']['clients']} clients: rows/s | {b['inprocess']['rows_per_s']:,.0f} | "
             f"{b['server']['rows_per_s']:,.0f} ({b['percent']:.1f}%) | >= 35% |",
             f"| (b) ... server with --model-isolation process | | {b['server_process']['rows_per_s']:,.0f} "
             f"({b['percent_process']:.1f}%) | >= 35% |",
             f"| (c) 1 row, 1 client: p50 / p99 | {c['inprocess']['p50_ms']:.3f} / {c['inprocess']['p99_ms']:.3f} ms"
             f" | {c['on']['p50_ms']:.3f} / {c['on']['p99_ms']:.3f} ms (batching off: {c['off']['p50_ms']:.3f} / "
             f"{c['off']['p99_ms']:.3f} ms) | |",
             f"| (c) ... server with --model-isolation process | | {c['process']['p50_ms']:.3f} / "
             f"{c['process']['p99_ms']:.3f} ms"
             " | |",
             "", f"| (d) 1 row, {d['on']['clients']} clients | rows/s | p50 | p99 |", "| --- | ---: | ---: | ---: |"]
    for name in ("on", "off"):
        x = d[name]
        lines.append(f"| batching {name} | {x['rows_per_s']:,.0f} | {x['p50_ms']:.3f} ms | {x['p99_ms']:.3f} ms |")
    lines.append(f"batching on / off, rows/s: {d['on']['rows_per_s'] / d['off']['rows_per_s']:.2f}x")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> dict:
    calls, seconds, single_calls = (20, 0.5, 50) if args.quick else (args.calls, args.seconds, args.single_calls)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbridge-bench-serving-")))
        model = Path(args.model).resolve() if args.model else trained_model(stack)
        if not (model / "saved_model.pb").is_file():
            raise SystemExit(f"--model {args.model}: no saved_model.pb there; give a SavedModel folder")

        # The three servers run from the start (an idle one costs nothing but memory), so that
        # measures of them are interleaved rather than made minutes apart.
        servers = {"on": stack.enter_context(model_server(model, tmp, True)),
                   "off": stack.enter_context(model_server(model, tmp, False)),
                   "process": stack.enter_context(model_server(model, tmp, True, "process"))}
        specs = input_specs(servers["on"].target)

        def client(mode: str, count: int, **work: Any) -> Callable[[], dict]:
            return lambda: run_workers(count, args.protocol, target=servers[mode].target, specs=specs, **work)

        def inprocess(flat: bool = False, **work: Any) -> Callable[[], dict]:
            protocol = "inprocess-flat" if flat else "inprocess"
            return lambda: run_workers(1, protocol, model=str(model), specs=specs, **work)

        # each pass makes its share of the work: half of it in A B B A, all of it in a quick A B
        passes = 1 if args.quick else 2
        half, half_single, half_seconds = max(1, calls // passes), max(1, single_calls // passes), seconds / passes
        a = interleaved({"inprocess": inprocess(rows=1024, calls=half),
                         "inprocess_flat": inprocess(True, rows=1024, calls=half),
                         "server": client("on", 1, rows=1024, calls=half),
                         "server_process": client("process", 1, rows=1024, calls=half)}, passes)
        b = interleaved({"inprocess": inprocess(rows=1024, seconds=half_seconds),
                         "server": client("on", args.clients, rows=1024, seconds=half_seconds),
                         "server_process": client("process", args.clients, rows=1024, seconds=half_seconds)},
                        passes)
        c = interleaved({"inprocess": inprocess(rows=1, calls=half_single),
                         "on": client("on", 1, rows=1, calls=half_single),
                         "off": client("off", 1, rows=1, calls=half_single),
                         "process": client("process", 1, rows=1, calls=half_single)}, passes)
        d = interleaved({"on": client("on", args.single_clients, rows=1, seconds=half_seconds),
                         "off": client("off", args.single_clients, rows=1, seconds=half_seconds)}, passes)
    return {
        "model": str(model) if args.model else "trained: bench8 (8-input regression)",
        "protocol": args.protocol,
        "inputs": specs,
        "batch_1024": {**a, "added_ms": round(a["server"]["p50_ms"] - a["inprocess"]["p50_ms"], 3),
                       "added_to_flat_ms": round(a["server"]["p50_ms"] - a["inprocess_flat"]["p50_ms"], 3),
                       "added_ms_process": round(a["server_process"]["p50_ms"] - a["inprocess"]["p50_ms"], 3)},
        "concurrent_1024": {**b, "percent": round(100 * b["server"]["rows_per_s"] / b["inprocess"]["rows_per_s"], 1),
                            "percent_process": round(
                                100 * b["server_process"]["rows_per_s"] / b["inprocess"]["rows_per_s"], 1)},
        "single_row": c,
        "concurrent_single_row": d,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--model", default=None, help="a SavedModel folder (default: train the bench model)")
    parser.add_argument("--protocol", default="tfserving", choices=sorted(CLIENT_FACTORIES))
    parser.add_argument("--calls", type=int, default=400, help="calls for the batch-1,024 latency, each side")
    parser.add_argument("--single-calls", type=int, default=2000, help="calls for the single-row latency, each side")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each concurrent run, each side")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the batch-1,024 rows/s (b)")
    parser.add_argument("--single-clients", type=int, default=8,
                        help="concurrent clients of the single-row rows/s, batching on and off (d)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke: 20 and 50 calls, half-second runs, each measure once (A B, not A B B A)")
    one = sub.add_parser("worker", help="(internal) one client or the in-process baseline")
    one.add_argument("--protocol", required=True,
                     choices=[*sorted(CLIENT_FACTORIES), "inprocess", "inprocess-flat"])
    one.add_argument("--target", default="")
    one.add_argument("--model", default="")
    one.add_argument("--inputs", required=True, help="JSON {input: dtype}")
    one.add_argument("--rows", type=int, required=True)
    one.add_argument("--calls", type=int, default=0)
    one.add_argument("--seconds", type=float, default=0.0)
    one.add_argument("--warmup", type=int, default=20)
    one.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command != "worker" and min(args.clients, args.single_clients) < 1:
        parser.error("--clients and --single-clients must be at least 1")
    if args.command == "worker":
        return worker(args)
    result = bench(args)
    print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
