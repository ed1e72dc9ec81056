"""With --model-isolation process, each loaded version runs in a model process of its own
(serving/loader.py): an unloaded version's process exits, and a model process that dies is loaded
again. Under either isolation a slow load holds up only its own model, and versions take the
TensorFlow settings. (Memory over load and unload cycles: test_memory.py.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from mlbridge.serving_client import ModelServerClient, ServingError

from ..procs import proc_stat
from .conftest import install_version, process_tree, run_server, wait_until

X = np.array([0.5, -1.0, 2.0], dtype=np.float32)
Y = np.array([1.5, 0.0, -3.0], dtype=np.float32)

def model_pid(output: str, name: str, version: int) -> int:
    found = re.findall(rf"model {name} version {version} loaded in \S+ \(model process (\d+)[,)]", output)
    assert found, f"no load of {name}:{version} in the log:\n{output[-3000:]}"
    return int(found[-1])


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


@pytest.fixture
def base(tmp_path, saved_models) -> Path:
    base = tmp_path / "base"
    install_version(base, "churn", 1, saved_models["churn_v1"])
    return base


PROCESS = ("--model-isolation", "process")


def test_an_unloaded_versions_process_exits(base, tmp_path, saved_models):
    with run_server(base, tmp_path, 0.05, *PROCESS) as server, \
            ModelServerClient(server.target, timeout=30) as client:
        client.predict("churn", None, {"x": X, "y": Y})
        first = model_pid(server.output(), "churn", 1)
        assert alive(first)
        processes_at_start = len(process_tree(server.proc.pid))

        for version in range(2, 7):  # 5 cycles: load the next version, unload the last
            install_version(base, "churn", version, saved_models["churn_v1" if version % 2 else "churn_v2"])
            wait_until(lambda v=version: client.metadata("churn").version == v, what=f"version {version}")
            client.predict("churn", None, {"x": X, "y": Y})
            shutil.rmtree(base / "churn" / str(version - 1))
            wait_until(
                lambda v=version: (m := {s.version: s for s in client.list_models("churn")})
                and v - 1 not in m,
                what=f"version {version - 1} unloaded",
            )
        # Unloaded processes linger a few seconds for requests that resolved them.
        wait_until(lambda: not alive(first), timeout=30, what="the first version's process gone")
        wait_until(
            lambda: len(process_tree(server.proc.pid)) == processes_at_start,
            timeout=30,
            what="only the last version's model process left",
        )
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)


def fifo_version(base: Path, source: Path) -> Path:
    """Model "hung" version 1 whose variables file is a FIFO: reading it blocks until someone
    writes to it. Returns the FIFO."""
    hung = base / "hung"
    hung.mkdir()
    staging = hung / ".tmp-1"
    shutil.copytree(source, staging)
    variables = next((staging / "variables").glob("variables.data-*"))
    variables.unlink()
    os.mkfifo(variables)
    staging.rename(hung / "1")
    return next((hung / "1" / "variables").glob("variables.data-*"))


def test_a_load_that_hangs_holds_up_only_its_own_model(base, tmp_path, saved_models):
    # A model process reads the FIFO and blocks, so its load hangs.
    with run_server(base, tmp_path, 0.2, "--load-threads", "2", *PROCESS) as server, \
            ModelServerClient(server.target, timeout=30) as client:
        variables = fifo_version(base, saved_models["churn_v1"])
        wait_until(
            lambda: {s.version: s.state for s in client.list_models("hung")} == {1: "LOADING"},
            what="hung version 1 LOADING",
        )
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)
        install_version(base, "churn", 2, saved_models["churn_v2"])
        wait_until(lambda: client.metadata("churn").version == 2, what="churn 2 served beside the hung load")
        with pytest.raises(ServingError) as info:
            client.predict("hung", None, {"x": X, "y": Y})
        assert info.value.transient and "loading" in info.value.details
        # Unblock it: the truncated variables make the load fail, reported, never served.
        with open(variables, "wb"):
            pass
        failed = wait_until(
            lambda: (s := client.list_models("hung")) and s[0].state == "FAILED" and s[0],
            what="the hung load reported FAILED",
        )
        assert failed.error
        assert "model hung version 1 failed to load" in server.output()
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)


def test_in_the_server_process_a_file_that_could_block_is_refused_at_once(base, tmp_path, saved_models):
    """Under --model-isolation none TensorFlow would read the FIFO holding Python's global lock,
    and the whole server would stop answering: the load reads every file first, and refuses one
    that is not a regular file, while the other models keep serving."""
    with run_server(base, tmp_path, 0.2, "--model-isolation", "none") as server, \
            ModelServerClient(server.target, timeout=10) as client:
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)
        variables = fifo_version(base, saved_models["churn_v1"])
        failed = wait_until(
            lambda: (s := client.list_models("hung")) and s[0].state == "FAILED" and s[0],
            what="the FIFO version reported FAILED",
        )
        assert f"{variables} is not a regular file" in failed.error
        assert "model hung version 1 failed to load" in server.output()
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)
        install_version(base, "churn", 2, saved_models["churn_v2"])
        wait_until(lambda: client.metadata("churn").version == 2, what="churn 2 served")


def test_a_killed_model_process_is_loaded_again(base, tmp_path):
    with run_server(base, tmp_path, 0.2, *PROCESS) as server, \
            ModelServerClient(server.target, timeout=30) as client:
        client.predict("churn", None, {"x": X, "y": Y})
        pid = model_pid(server.output(), "churn", 1)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while re.search(rf"model churn version 1 loaded in \S+ \(model process (?!{pid}[,)])",
                        server.output()) is None:
            assert time.monotonic() < deadline, server.output()[-3000:]
            try:  # a request meanwhile fails as transient, or finds the new process
                client.predict("churn", None, {"x": X, "y": Y})
            except ServingError as e:
                assert e.transient, e
            time.sleep(0.1)
        assert "its model process ended unexpectedly" in server.output()
        assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)
        assert alive(server.proc.pid)


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_versions_take_the_tensorflow_thread_settings_and_the_flat_call(base, tmp_path, isolation):
    """TF Serving's --tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism reach
    where the version runs (its model process, or the server process under --model-isolation
    none), which also calls the signature through its flat entry: the log line of the load says
    both, and the scores are the model's (x and y in their places)."""
    from .models import CHURN_V1

    env = {"MLBRIDGE_SERVING_TENSORFLOW_INTRA_OP_PARALLELISM": "1",
           "MLBRIDGE_SERVING_TENSORFLOW_INTER_OP_PARALLELISM": "2",
           "MLBRIDGE_SERVING_MODEL_ISOLATION": isolation}
    where = r"model process \d+" if isolation == "process" else "in the server process"
    with run_server(base, tmp_path, 0.2, env=env) as server, \
            ModelServerClient(server.target, timeout=30) as client:
        score = client.predict("churn", None, {"x": X, "y": Y})["score"]
        line = re.search(rf"model churn version 1 loaded in \S+ \(({where}[^)]*)\)", server.output())
        assert line, server.output()[-3000:]
        assert "TensorFlow threads: intra-op 1, inter-op 2" in line.group(1)
        assert "flat call for serving_default" in line.group(1)
    a, b, c = CHURN_V1
    np.testing.assert_allclose(score, 1 / (1 + np.exp(-(a * X + b * Y + c))), rtol=1e-5)
