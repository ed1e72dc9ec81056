"""Fixtures of the end-to-end tests: a trained model on the breast cancer data, served."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbridge.config import Dsn
from mlbridge.db import connect, quote_ident
from mlbridge.db.install import install, scratch_schema
from mlbridge.serving_client import ModelServerClient, ServingError

from ..procs import REPO

sys.path.insert(0, str(REPO / "examples"))
import breast_cancer  # noqa: E402


def train_cli(dsn, model_base: Path, *args: str) -> subprocess.CompletedProcess:
    """`mlbridge train` as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "mlbridge", "train", "--dsn", str(dsn), "--model-base",
                           str(model_base), "--quiet", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=REPO)


def wait_served(server_target: str, name: str, version: int, timeout: float = 60) -> None:
    client = ModelServerClient(server_target, timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.metadata(name, version)
                return
            except ServingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.close()


@pytest.fixture(scope="session")
def bc_table(dsn):
    """demo.breast_cancer: 569 rows, 30 DOUBLE features, label `benign`."""
    breast_cancer.load(dsn)
    return "demo.breast_cancer"


@pytest.fixture(scope="session")
def bc_model(dsn, bc_table, model_base, model_server, bridge):
    """Model `bc` trained with `mlbridge train` on the table, loaded by the model server. At most 20
    epochs per network (the default would run up to 200, with early stopping): the tests need a
    good model (accuracy above 0.9, which linear reaches in a few epochs), not the best one."""
    done = train_cli(dsn, model_base, "--query", f"SELECT * FROM {bc_table}", "--label", "benign", "--model", "bc",
                     "--epochs", "20")
    assert done.returncode == 0, done.stderr[-3000:]
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT MAX(version) FROM models WHERE name = 'bc'")
    version = cur.fetchone()[0]
    conn.close()
    wait_served(model_server.target, "bc", version)
    return {"name": "bc", "version": version, "path": model_base / "bc" / str(version), "stdout": done.stdout}


@pytest.fixture(scope="session")
def bc_features():
    from sklearn.datasets import load_breast_cancer

    return breast_cancer.column_names(load_breast_cancer().feature_names)


@pytest.fixture(scope="session")
def surface(dsn):
    """An mlbridge schema of its own beside `mlbridge` (`mlbridge_surface`), which no bridge of the
    session watches: for tests that queue requests and inspect the queue as they left it."""
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_surface"})
    install(target)
    yield target
    conn = connect(target)
    cur = conn.cursor()
    for name in (target.database, scratch_schema(target.database)):
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
    conn.close()
