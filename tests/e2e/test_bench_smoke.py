"""A small run of `make bench`, so the benchmark keeps working."""

import json
import os
import subprocess
import sys

from ..procs import REPO


def test_predict_scores_benchmark_smoke(dsn):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "predict_scores.py"), "--rows", "3000", "--dsn", str(dsn)],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["rows"], result["rows_done"], result["rows_failed"], result["status"]) == (3000, 3000, 0, "done")
    assert result["total_s"] > 0 and result["rows_per_s"] > 0
