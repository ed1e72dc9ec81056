"""`make bench-protocols`: the model server's two protocols beside the in-process call.

    python bench/protocols.py                       a stand-in 8-input model, 2,000 calls a case
    python bench/protocols.py --model PATH          another SavedModel with 8 float32 inputs
    python bench/protocols.py --calls 200 --quick   a smoke

One `mlbridge serve` process, one client at a time, on this machine. Measured:

- single-row latency (median and p99) of TF Serving's Predict and of the Open Inference
  Protocol's ModelInfer, through mlbridge's light clients (ModelServerClient,
  InferenceClient), and of ModelInfer through the official tritonclient[grpc] (in the v2 venv,
  when `make v2-venv` has built it);
- a 1,024-row batch (median per call) through each protocol beside the same signature called
  in-process, and what gRPC adds.

The stand-in model takes x1..x8 (float32, one value a row) into a 32-unit tanh layer and a
sigmoid score: the shape of the bridge benchmark's 8-input MLP (`mlbridge train` on
bench.rows8); pass that model's folder with --model to measure it instead. Prints a table and
one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The in-process call runs TensorFlow as the server does (oneDNN off unless TF_ENABLE_ONEDNN_OPTS
# is set): set before TensorFlow is imported.
from mlbridge_server.serving.tensorflow_env import prepare  # noqa: E402

prepare()

import numpy as np  # noqa: E402

from mlbridge.serving_client import ModelServerClient  # noqa: E402
from mlbridge.v2_client import InferenceClient  # noqa: E402
from tests.procs import start_model_server  # noqa: E402
from tests.v2_venv import V2_VENV, v2_env  # noqa: E402

INPUTS = [f"x{i}" for i in range(1, 9)]
TRITON_SCRIPT = '''
import json, sys, time
import numpy as np
import tritonclient.grpc as triton
target, calls, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
client = triton.InferenceServerClient(target)
def one():
    inputs = []
    for name in names:
        item = triton.InferInput(name, [1], "FP32")
        item.set_data_from_numpy(np.array([0.5], np.float32))
        inputs.append(item)
    client.infer("bench8", inputs)
for _ in range(min(50, calls)):
    one()
seconds = []
for _ in range(calls):
    started = time.perf_counter()
    one()
    seconds.append(time.perf_counter() - started)
json.dump(seconds, sys.stdout)
'''


def build_stand_in(path: Path) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(8)
    w1 = tf.constant(rng.normal(size=(8, 32)).astype(np.float32) / 3)
    w2 = tf.constant(rng.normal(size=(32, 1)).astype(np.float32) / 6)

    class Stand(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=n) for n in INPUTS])
        def serve(self, *columns):
            hidden = tf.tanh(tf.stack(columns, axis=1) @ w1)
            return {"score": tf.sigmoid(tf.squeeze(hidden @ w2, axis=1))}

    module = Stand()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3),
            "calls": len(ms)}


def timed(call, calls: int, warmup: int = 50) -> list[float]:
    for _ in range(min(warmup, calls)):
        call()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def rows(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {name: rng.normal(size=n).astype(np.float32) for name in INPUTS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel with inputs x1..x8 (default: the stand-in)")
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per case")
    parser.add_argument("--batch-calls", type=int, default=200, help="1,024-row calls per case")
    parser.add_argument("--quick", action="store_true", help="a smoke: 100 calls, 20 batches")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.batch_calls = 100, 20

    import tensorflow as tf

    work = Path(tempfile.mkdtemp(prefix="bench-protocols-"))
    try:
        base = work / "models"
        target_dir = base / "bench8" / "1"
        target_dir.parent.mkdir(parents=True)
        if args.model:
            shutil.copytree(args.model, target_dir)
        else:
            build_stand_in(target_dir)
        in_process = tf.saved_model.load(str(target_dir)).signatures["serving_default"]
        results: dict[str, dict] = {}
        one, batch = rows(1), rows(1024)
        with start_model_server(base, work) as server:
            with ModelServerClient(server.target) as tfs, InferenceClient(server.target) as v2:
                v2.metadata("bench8", 1)
                results["single_tfserving"] = summary(timed(lambda: tfs.predict("bench8", None, one), args.calls))
                results["single_v2"] = summary(timed(lambda: v2.predict("bench8", None, one), args.calls))
                python = V2_VENV / "bin" / "python"
                if python.exists():
                    done = subprocess.run([str(python), "-c", TRITON_SCRIPT, server.target, str(args.calls),
                                           ",".join(INPUTS)], capture_output=True, text=True, env=v2_env(),
                                          timeout=600, cwd="/")
                    if done.returncode == 0:
                        results["single_v2_tritonclient"] = summary(json.loads(done.stdout))
                    else:
                        print(f"tritonclient failed: {done.stderr[-1000:]}", file=sys.stderr)
                tensors = {k: tf.constant(v) for k, v in batch.items()}
                results["batch1024_in_process"] = summary(timed(lambda: in_process(**tensors), args.batch_calls, 10))
                results["batch1024_tfserving"] = summary(
                    timed(lambda: tfs.predict("bench8", None, batch), args.batch_calls, 10))
                results["batch1024_v2"] = summary(timed(lambda: v2.predict("bench8", None, batch), args.batch_calls, 10))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base_ms = results["batch1024_in_process"]["median_ms"]
    print(f"{'case':28} {'median ms':>10} {'p99 ms':>10} {'calls':>6}")
    for name, r in results.items():
        print(f"{name:28} {r['median_ms']:>10.3f} {r['p99_ms']:>10.3f} {r['calls']:>6}")
    for proto in ("tfserving", "v2"):
        added = results[f"batch1024_{proto}"]["median_ms"] - base_ms
        results[f"batch1024_{proto}"]["added_ms"] = round(added, 3)
        print(f"gRPC adds at batch 1,024 ({proto}): {added:.3f} ms (median)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
