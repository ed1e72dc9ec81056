"""20 load and unload cycles leave the server's memory (the summed PSS of all its processes)
within 50 MB of where it started, wherever versions run.

The model carries 80 MB of weights, so that a version's worth of memory kept after its unload
shows: under --model-isolation none, TensorFlow's oneDNN allocator kept one (62 MB of a 62 MB
model) until the server turned oneDNN off (serving/tensorflow_env.py); a model process gives all
of its memory back when it exits."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from mlbridge.serving_client import ModelServerClient

from .conftest import install_version, process_tree, pss_bytes, run_server, wait_until
from .models import build_large

# The bound on what 20 load and unload cycles may add to the server's memory.
MAX_GROWTH_BYTES = 50 * 1024 * 1024
WEIGHTS_MB = 80
CYCLES = 20
X = np.array([1.0, 2.0], dtype=np.float32)


@pytest.fixture(scope="module")
def large_model(tmp_path_factory):
    return build_large(tmp_path_factory.mktemp("large") / "model", WEIGHTS_MB)


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_load_and_unload_cycles_give_the_memory_back(large_model, tmp_path, isolation):
    base = tmp_path / "base"
    install_version(base, "large", 1, large_model, link=True)
    with run_server(base, tmp_path, 0.05, "--model-isolation", isolation) as server, \
            ModelServerClient(server.target, timeout=60) as client:
        assert client.predict("large", None, {"x": X})["score"].tolist() == [1.5, 2.0]
        processes_at_start = len(process_tree(server.proc.pid))
        start = pss_bytes(process_tree(server.proc.pid))

        for version in range(2, 2 + CYCLES):  # load the next version, then unload the last
            install_version(base, "large", version, large_model, link=True)
            wait_until(lambda v=version: client.metadata("large").version == v, what=f"version {version}")
            assert client.predict("large", None, {"x": X})["score"].tolist() == [1.5, 2.0]
            shutil.rmtree(base / "large" / str(version - 1))
            wait_until(
                lambda v=version: v - 1 not in {s.version for s in client.list_models("large")},
                what=f"version {version - 1} unloaded",
            )
        # An unloaded version lingers a few seconds for requests that resolved it just before.
        wait_until(
            lambda: len(process_tree(server.proc.pid)) == processes_at_start,
            timeout=30, what="the unloaded versions' model processes gone",
        )
        deadline = time.monotonic() + 15  # what the last unload frees can take a moment to show
        while (end := pss_bytes(process_tree(server.proc.pid))) - start > MAX_GROWTH_BYTES:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "oneDNN off" in server.output()
        assert end - start <= MAX_GROWTH_BYTES, (
            f"{CYCLES} load/unload cycles of a {WEIGHTS_MB} MB model grew the server from "
            f"{start >> 20} MB to {end >> 20} MB"
        )
