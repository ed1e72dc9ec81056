"""A small run of `make bench`, so the benchmark keeps working: every path it measures runs,
on its own private database, and reports the numbers the table is made of."""

import json
import os
import subprocess
import sys

from ..procs import REPO


def test_bench_smoke():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench.py"), "--rows", "3000", "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    scores, table = result["predict_scores"], result["predict_table"]
    assert (scores["rows_done"], scores["rows_failed"], scores["status"]) == (3000, 0, "done")
    assert table["rows_written"] == 3000 and table["status"] == "done"
    assert result["direct"]["rows"] == 3000
    assert set(scores["bridge_stages"]) == {"claim", "read", "convert", "predict", "write"}
    for name in ("row_back_to_back", "row_spaced", "row_under_load"):
        assert result[name]["p50_ms"] > 0
    assert "predict_scores / direct" in done.stdout and result["bridge_peak_rss_mb"] > 0


def _stand_in_model(path):
    """bench/protocols.py's stand-in for the bench model (8 float32 inputs, an MLP), built with
    TensorFlow in seconds: the smoke checks the benchmark's machinery, `make bench` trains the
    real model with `mlbridge train`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_protocols", REPO / "bench" / "protocols.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_stand_in(path)


def test_serving_bench_smoke(tmp_path):
    """`make bench-serving` with few calls and clients, each measure once: every measure is made,
    through real server processes (batching on, batching off, model isolation process) and worker
    processes."""
    model = _stand_in_model(tmp_path / "model")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "serving.py"), "--quick", "--clients", "2",
                           "--single-clients", "3", "--model", str(model)],
                          capture_output=True, text=True, timeout=900, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "tfserving" and len(result["inputs"]) == 8
    a, b = result["batch_1024"], result["concurrent_1024"]
    assert a["server"]["calls"] == a["inprocess"]["calls"] == 20 and a["server"]["rows"] == 1024
    assert a["added_ms"] == round(a["server"]["p50_ms"] - a["inprocess"]["p50_ms"], 3)
    # The flat call in-process (as the server makes it), measured beside TensorFlow's call.
    assert a["inprocess_flat"]["calls"] == 20 and a["inprocess_flat"]["p50_ms"] > 0
    assert a["added_to_flat_ms"] == round(a["server"]["p50_ms"] - a["inprocess_flat"]["p50_ms"], 3)
    assert b["server"]["clients"] == 2 and b["server"]["rows_per_s"] > 0 and b["percent"] > 0
    # The same measures against a server with --model-isolation process.
    assert a["server_process"]["calls"] == 20 and a["server_process"]["rows"] == 1024
    assert a["added_ms_process"] == round(a["server_process"]["p50_ms"] - a["inprocess"]["p50_ms"], 3)
    assert b["server_process"]["clients"] == 2 and b["percent_process"] > 0
    for mode in ("on", "off", "process"):
        assert result["single_row"][mode]["calls"] == 50
    for mode in ("on", "off"):
        d = result["concurrent_single_row"][mode]
        assert d["clients"] == 3 and d["rows_per_s"] > 0 and d["p99_ms"] >= d["p50_ms"] > 0
    assert "(b) batch 1,024, 2 clients" in done.stdout and "(d) 1 row, 3 clients" in done.stdout and "batching on / off" in done.stdout
    assert "server with --model-isolation process" in done.stdout


def test_serving_bench_refuses_a_folder_without_a_saved_model(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "serving.py"), "--quick", "--model", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0
    assert "no saved_model.pb there" in done.stderr and str(tmp_path) in done.stderr


def test_fairness_bench_smoke():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "fairness.py"), "--rows", "5000", "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy_status"] == "done" and result["light_alone_s"] > 0 and result["light_beside_heavy_s"] > 0
    assert sum(result["concurrent"].values()) == 4 and set(result["concurrent"]) <= {"queued", "refused"}


def test_dataset_bench_smoke():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "dataset.py"), "--rows", "20000", "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for readers in (1, 2):
        run = result[f"readers_{readers}"]
        assert run["rows"] == 20000 and run["rows_per_s"] > 0 and run["grew_mb"] >= 0


def test_quality_smoke():
    """`make quality` on its smallest set and a small synthetic table, one pair of folds, networks
    cut at a few epochs: the harness and every model type's fit run, the scores only need to be
    scores."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--sets", "penguins,synthetic",
                           "--repeats", "1", "--synthetic-rows", "2000", "--epochs", "3"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("penguins", "synthetic"):
        found = summary["sets"][name]
        assert found["verdict"] in ("ok", "SHORT"), found  # a number on each side, not a failure
        assert found["mlbridge"] > 50 and found["best_score"] > 50
