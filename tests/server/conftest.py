"""Fixtures of the model server tests: tiny SavedModels, model bases laid out
as TF Serving's, and the real server as a process: one per test module, except
one that the two bad-input modules share."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbridge.serving_client import ServingError

from ..procs import Process, proc_stat, wait_for
from .models import build_all

REPO = Path(__file__).resolve().parents[2]
# The caps of the bad-input tests' server (MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS and _BYTES): small,
# so that what goes over them is cheap to build and send.
BAD_INPUT_MAX_ELEMENTS = 100_000
BAD_INPUT_MAX_BYTES = 1024 * 1024


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """name -> SavedModel folder (churn_v1, churn_v2, text), built once."""
    return build_all(tmp_path_factory.mktemp("saved_models"))


def install_version(base: Path, name: str, version: int, source: Path, link: bool = False) -> Path:
    """Copy a SavedModel into BASE/NAME/VERSION the way the trainer does: into
    a .tmp- folder first, then one atomic rename. ``link``: hard-link the files
    instead of copying them (a large model, installed many times)."""
    model_dir = base / name
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".tmp-{version}-{time.monotonic_ns()}"
    shutil.copytree(source, tmp, copy_function=os.link if link else shutil.copy2)
    os.rename(tmp, model_dir / str(version))
    return model_dir / str(version)


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "client"), str(REPO / "server")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def run_server(base: Path, workdir: Path, poll_interval: float = 0.2, *extra: str,
               env: dict[str, str] | None = None):
    """The model server as a process on a free port (it binds port 0 and
    writes the port it got into the ready file); ``env``: variables to add."""
    ready = workdir / "server.ready"
    ready.unlink(missing_ok=True)
    log = workdir / "server.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlbridge_server.serving", "--model-base", str(base),
             "--port", "0", "--host", "127.0.0.1", "--poll-interval", str(poll_interval),
             "--ready-file", str(ready), *extra],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**server_env(), **(env or {})}, cwd=REPO,
        )
    process = Process(proc, log)
    try:
        wait_for(ready, process, "model server", timeout=120)
        process.target = f"127.0.0.1:{json.loads(ready.read_text())['port']}"
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def bad_input_server(saved_models, tmp_path_factory):
    """The server of test_bad_input (TF Serving's API) and test_v2_bad_input (the Open Inference
    Protocol): churn 1 and text 1, capped at BAD_INPUT_MAX_ELEMENTS and BAD_INPUT_MAX_BYTES. Shared:
    neither module changes its models or settings, and both check after each bad request that it
    still serves; one start (TensorFlow loaded into a model process, seconds) instead of two."""
    from mlbridge_server.serving.limits import MAX_BYTES_ENV, MAX_ELEMENTS_ENV

    base = tmp_path_factory.mktemp("bad_input_base")
    install_version(base, "churn", 1, saved_models["churn_v1"])
    install_version(base, "text", 1, saved_models["text"])
    env = {MAX_ELEMENTS_ENV: str(BAD_INPUT_MAX_ELEMENTS), MAX_BYTES_ENV: str(BAD_INPUT_MAX_BYTES)}
    with run_server(base, tmp_path_factory.mktemp("bad_input_server"), 0.5, env=env) as process:
        yield process


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat(entry)
        if fields is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all of its descendants."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, []))
    return out


def pss_bytes(pids: list[int]) -> int:
    """The summed proportional set size of ``pids``: shared pages are counted
    once in all, split between the processes sharing them."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:  # it exited meanwhile
            pass
    return total


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll ``condition`` (a callable; ServingError counts as False) until truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except ServingError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r})")
