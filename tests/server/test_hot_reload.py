"""The server follows its model base while it runs: new versions and models
are served within seconds, without a failed request during the swap; broken
versions are reported and do not take the model down; removed models go.

Every test runs twice: with versions loaded in the server process (the default,
--model-isolation none) and with each version in a model process of its own
(--model-isolation process), which must behave the same."""

from __future__ import annotations

import re
import shutil
import threading

import numpy as np
import pytest

from mlbridge.serving_client import ModelServerClient, ServingError

from .conftest import install_version, process_tree, run_server, wait_until
from .models import call_directly

X = np.array([0.5, -1.0, 2.0], dtype=np.float32)
Y = np.array([1.5, 0.0, -3.0], dtype=np.float32)


@pytest.fixture(scope="module", params=["process", "none"])
def isolation(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def base(saved_models, tmp_path_factory, isolation):
    base = tmp_path_factory.mktemp(f"base-{isolation}")
    install_version(base, "churn", 1, saved_models["churn_v1"])
    return base


@pytest.fixture(scope="module")
def server(base, tmp_path_factory, isolation):
    with run_server(base, tmp_path_factory.mktemp("server"), 0.2, "--model-isolation", isolation) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    with ModelServerClient(server.target, timeout=30) as c:
        yield c


def _versions(client, name):
    return {m.version: m for m in client.list_models(name)}


def test_versions_run_where_model_isolation_says(server, client, isolation):
    """process: a model process per version (forked by the loader process), named in the load's
    log line; none: no process beside the server, and the line says so."""
    assert client.predict("churn", None, {"x": X, "y": Y})["score"].shape == (3,)
    line = re.search(r"model churn version 1 loaded in \S+ \(([^)]*)\)", server.output())
    assert line, server.output()[-3000:]
    children = process_tree(server.proc.pid)[1:]
    if isolation == "none":
        assert line.group(1).startswith("in the server process"), line.group(0)
        assert children == [], f"processes beside a server with --model-isolation none: {children}"
    else:
        assert line.group(1).startswith("model process "), line.group(0)
        assert children, "no model process beside the server"
    assert "flat call for serving_default" in line.group(1)


def test_new_version_replaces_the_old_without_a_failed_request(base, client, saved_models):
    expected_v2 = call_directly(saved_models["churn_v2"], x=X, y=Y)["score"]
    assert client.metadata("churn").version == 1

    errors: list[Exception] = []
    answered = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                client.predict("churn", None, {"x": X, "y": Y})
                answered.append(1)
            except ServingError as e:
                errors.append(e)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        install_version(base, "churn", 2, saved_models["churn_v2"])
        wait_until(lambda: client.metadata("churn").version == 2, what="version 2 served")
        # a few more requests after the swap
        wait_until(lambda: len(answered) > 20, what="requests answered")
    finally:
        stop.set()
        worker.join()
    assert errors == []
    np.testing.assert_allclose(
        client.predict("churn", None, {"x": X, "y": Y})["score"], expected_v2, atol=1e-5
    )
    # A request pinned to the old version (queued before the swap) still gets it.
    expected_v1 = call_directly(saved_models["churn_v1"], x=X, y=Y)["score"]
    np.testing.assert_allclose(
        client.predict("churn", 1, {"x": X, "y": Y})["score"], expected_v1, atol=1e-5
    )


def test_unfinished_and_broken_versions(base, client, saved_models):
    # The trainer's temporary folder is not a version.
    shutil.copytree(saved_models["churn_v1"], base / "churn" / ".tmp-9")
    # A version whose saved_model.pb is garbage fails alone.
    broken = base / "churn" / "3"
    shutil.copytree(saved_models["churn_v1"], base / "churn" / ".tmp-3")
    (base / "churn" / ".tmp-3" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (base / "churn" / ".tmp-3").rename(broken)

    failed = wait_until(
        lambda: (v := _versions(client, "churn").get(3)) and v.state == "FAILED" and v,
        what="version 3 reported FAILED",
    )
    assert failed.error
    versions = _versions(client, "churn")
    assert 9 not in versions
    assert versions[2].latest and versions[2].state == "AVAILABLE"
    assert client.metadata("churn").version == 2
    client.predict("churn", None, {"x": X, "y": Y})
    with pytest.raises(ServingError) as info:
        client.predict("churn", 3, {"x": X, "y": Y})
    assert "version 3" in info.value.details and not info.value.transient

    # Fixed in place: tried again because its files changed.
    shutil.rmtree(broken)
    install_version(base, "churn", 3, saved_models["churn_v1"])
    wait_until(lambda: client.metadata("churn").version == 3, what="version 3 served once fixed")
    shutil.rmtree(base / "churn" / ".tmp-9")


def test_new_model_appears_and_removed_model_goes(base, client, saved_models):
    install_version(base, "text", 4, saved_models["text"])
    # Listed as LOADING first; predict once it is AVAILABLE.
    wait_until(lambda: ("text", "AVAILABLE") in {(m.name, m.state) for m in client.list_models()},
               what="text available")
    out = client.predict(
        "text", None, {"text": np.array(["a"], dtype=object), "n": np.array([1], np.int32)}
    )
    assert out["upper"].tolist() == [b"A"]

    shutil.rmtree(base / "text")
    wait_until(lambda: "text" not in {m.name for m in client.list_models()}, what="text gone")
    with pytest.raises(ServingError) as info:
        client.predict("text", None, {"text": np.array(["a"], dtype=object), "n": np.array([1], np.int32)})
    assert info.value.code.name == "NOT_FOUND"


def test_removed_newest_version_falls_back(base, client):
    shutil.rmtree(base / "churn" / "3")
    wait_until(lambda: client.metadata("churn").version == 2, what="version 2 served again")
    assert 3 not in _versions(client, "churn")


def test_sigterm_stops_gracefully(server, tmp_path_factory):
    ready = server.log.with_name("server.ready")
    assert ready.exists()
    assert server.stop() == 0
    assert not ready.exists()
    assert "stopping" in server.output()
