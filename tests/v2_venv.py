"""The venv of the Open Inference Protocol's own software (tritonclient[grpc], MLServer), which
the tests run as subprocesses: `make v2-venv` builds it (`make test` does, first)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
V2_VENV = REPO / ".venv-v2"


def v2_python() -> Path:
    """The v2 venv's interpreter, building the venv with make when it is missing (a few minutes
    the first time, from the package registry)."""
    python = V2_VENV / "bin" / "python"
    if not (V2_VENV / ".installed").exists():
        done = subprocess.run(["make", "v2-venv"], cwd=REPO, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"make v2-venv failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert python.exists(), f"{python} is missing: run make v2-venv"
    return python


def v2_env() -> dict[str, str]:
    """An environment for the v2 venv's processes: none of the project's paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_triton_client(target: str, ops: list[dict], timeout: float = 180) -> list:
    """tests/server/triton_client.py in the v2 venv against ``target``: one answer per op."""
    script = REPO / "tests" / "server" / "triton_client.py"
    done = subprocess.run([str(v2_python()), str(script), target], input=json.dumps(ops),
                          capture_output=True, text=True, timeout=timeout, env=v2_env(), cwd="/")
    assert done.returncode == 0, done.stderr[-4000:]
    answers = json.loads(done.stdout)
    assert len(answers) == len(ops)
    return answers
