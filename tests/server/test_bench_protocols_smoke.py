"""`make bench-protocols` runs: its smoke (--quick) measures every case and prints its JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from ..procs import REPO
from ..v2_venv import v2_python
from .conftest import server_env


def test_bench_protocols_quick():
    v2_python()  # tritonclient's case runs in the v2 venv
    done = subprocess.run([sys.executable, str(REPO / "bench" / "protocols.py"), "--quick"], capture_output=True,
                          text=True, timeout=900, env=server_env(), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for case in ("single_tfserving", "single_v2", "single_v2_tritonclient", "batch1024_in_process",
                 "batch1024_tfserving", "batch1024_v2"):
        assert results[case]["median_ms"] > 0 and results[case]["p99_ms"] >= results[case]["median_ms"], case
    assert results["single_v2"]["calls"] == 100
    assert "added_ms" in results["batch1024_v2"]
