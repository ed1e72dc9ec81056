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


def test_fairness_bench_smoke():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "fairness.py"), "--rows", "20000", "--quick"],
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
    """`make quality` on its smallest set and a small synthetic table, one pair of folds."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--sets", "penguins,synthetic",
                           "--repeats", "1", "--synthetic-rows", "4000"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("penguins", "synthetic"):
        found = summary["sets"][name]
        assert found["verdict"] in ("ok", "SHORT"), found  # a number on each side, not a failure
        assert found["mlbridge"] > 50 and found["best_score"] > 50
