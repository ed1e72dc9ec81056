"""Shared fixtures: a private database server per test run (a fresh data folder, its own port,
never the machine's own server), the installed schema, a model base, and the real model server
and bridge as processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlbridge.config import Dsn
from mlbridge.db import connect
from mlbridge.db.install import install
from mlbridge.db.local import LocalServer

from .procs import no_open_transactions, start_bridge, start_model_server

# A developer's own password and settings file would be added to the tests' passwordless DSNs.
# The same for the model server's TLS files and token.
for _name in ("MLBRIDGE_DB_PASSWORD", "MLBRIDGE_SETTINGS", "MLBRIDGE_SERVER_CA", "MLBRIDGE_SERVER_CERT",
              "MLBRIDGE_SERVER_KEY", "MLBRIDGE_SERVER_TLS_NAME", "MLBRIDGE_SERVER_TOKEN",
              "MLBRIDGE_SERVER_TOKEN_FILE"):
    os.environ.pop(_name, None)
# And the model server's own settings (mlbridge.serving_settings), which every test server would read.
for _name in [n for n in os.environ if n.startswith("MLBRIDGE_SERVING_")]:
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def db_server(tmp_path_factory) -> Dsn:
    """A private database server for this run, stopped and its files removed at the end."""
    server = LocalServer(tmp_path_factory.mktemp("db") / "db")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(db_server: Dsn) -> Dsn:
    """The installed mlbridge schema."""
    target = Dsn(**{**db_server.__dict__, "database": "mlbridge"})
    install(target)
    return target


@pytest.fixture(scope="session")
def model_base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def db(dsn):
    """A root connection to the mlbridge schema, autocommit on."""
    conn = connect(dsn)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def model_server(model_base, tmp_path_factory):
    """The real model server on the session's model base."""
    with start_model_server(model_base, tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture(scope="session")
def bridge(dsn, model_server, tmp_path_factory):
    """One real bridge process on the session's queue and model server."""
    with start_bridge(dsn, model_server.target, tmp_path_factory.mktemp("bridge")) as proc:
        proc.settled = lambda: no_open_transactions(dsn)
        yield proc
