"""Dynamic batching in the real server process, on real SavedModels: many
clients at once get exactly what they get alone, one client's bad value fails
only that client, and a signature whose outputs are not one row per input row
still answers each client with its own."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from mlbridge.serving_client import InvalidRequest, ModelServerClient

from .conftest import install_version, run_server
from .models import call_directly

CLIENTS = 12
CALLS = 15


def build_distinct(path: Path) -> Path:
    """distinct = the distinct values of x (tf.unique): its leading dimension
    is not the number of rows in, so calls must not be stacked."""
    import tensorflow as tf

    class Distinct(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"distinct": tf.unique(x).y}

    module = Distinct()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def server(saved_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("base")
    install_version(base, "churn", 1, saved_models["churn_v1"])
    install_version(base, "text", 1, saved_models["text"])
    install_version(base, "distinct", 1, build_distinct(tmp_path_factory.mktemp("m") / "distinct"))
    # A 5 ms wait to fill a batch while another runs: batches form even when
    # the clients' threads are slow to send.
    env = {"MLBRIDGE_SERVING_BATCH_TIMEOUT_MICROS": "5000", "MLBRIDGE_SERVING_ENABLE_BATCHING": "1"}
    with mock.patch.dict(os.environ, env):
        with run_server(base, tmp_path_factory.mktemp("server"), 0.5, "--log-level", "DEBUG") as p:
            yield p


def batched_calls(server) -> list[tuple[int, int]]:
    """(requests, rows) of every call the server made for several requests."""
    found = re.findall(r"one call ran (\d+) requests, (\d+) rows", server.output())
    return [(int(a), int(b)) for a, b in found]


def run_clients(target: str, work) -> list:
    """``work(client, i, j)`` for CLIENTS threads, CALLS times each, all at
    once; returns each call's result or exception, by [i][j]."""
    results = [[None] * CALLS for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def client_thread(i: int) -> None:
        with ModelServerClient(target, timeout=60) as client:
            client.list_models()  # connect before the race
            start.wait()
            for j in range(CALLS):
                try:
                    results[i][j] = work(client, i, j)
                except Exception as e:  # kept to be asserted on
                    results[i][j] = e

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a client did not finish"
    return results


def rows_for(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    n = 1 + (i * 7 + j) % 5
    x = np.arange(n, dtype=np.float32) * 0.5 + i - j / 10
    y = np.full(n, (i - j) / 3, dtype=np.float32)
    return x, y


def test_concurrent_clients_get_what_they_get_alone(server, saved_models):
    def work(client, i, j):
        x, y = rows_for(i, j)
        return client.predict("churn", None, {"x": x, "y": y})

    before = len(batched_calls(server))
    results = run_clients(server.target, work)
    for i in range(CLIENTS):
        for j in range(CALLS):
            x, y = rows_for(i, j)
            got = results[i][j]
            assert not isinstance(got, Exception), got
            alone = call_directly(saved_models["churn_v1"], x=x, y=y)
            np.testing.assert_allclose(got["score"], alone["score"], atol=1e-5)
            np.testing.assert_array_equal(got["label"], alone["label"])
    calls = batched_calls(server)[before:]
    assert calls, "no call ran several requests: nothing was batched"
    assert all(requests >= 2 and rows <= 1024 for requests, rows in calls)


def test_one_clients_bad_value_fails_only_that_client(server):
    def work(client, i, j):
        # client 0 sends text that is not a number on every third call
        bad = i == 0 and j % 3 == 0
        text = np.array([f"{i}.{j}", "oops" if bad else f"{j}"], dtype=object)
        return client.predict("text", None, {"text": text}, signature="parse")

    results = run_clients(server.target, work)
    for i in range(CLIENTS):
        for j in range(CALLS):
            got = results[i][j]
            if i == 0 and j % 3 == 0:
                assert isinstance(got, InvalidRequest), got
                assert "oops" in str(got) and 'signature "parse"' in str(got)
            else:
                assert not isinstance(got, Exception), got
                np.testing.assert_array_equal(got["number"], [float(f"{i}.{j}"), float(j)])
    # the batches that held the bad value ran again request by request
    assert "running each alone" in server.output()


def test_outputs_that_are_not_one_row_per_row_answer_each_client_with_its_own(server):
    def work(client, i, j):
        x = np.array([i, j, i, j + 100], dtype=np.float32)  # a repeat in every request
        return client.predict("distinct", None, {"x": x})

    results = run_clients(server.target, work)
    for i in range(CLIENTS):
        for j in range(CALLS):
            got = results[i][j]
            assert not isinstance(got, Exception), got
            want = [i, j, j + 100] if i != j else [i, j + 100]
            np.testing.assert_array_equal(got["distinct"], want)
    # a batched call found it out, and the signature is run request by request since
    assert "is no longer batched" in server.output()
