"""Shared fixtures: a private database server per test run, the installed schema, a model base,
and the real model server and bridge as processes.

Set MLBRIDGE_TEST_DSN=mysql://root@host:port/ to run against another server instead: the tests
then create a schema of their own with a random name and drop only that.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mlbridge.config import Dsn
from mlbridge.db import connect, quote_ident
from mlbridge.db.install import install, scratch_schema
from mlbridge.db.local import LocalServer

from .procs import start_bridge, start_model_server


@pytest.fixture(scope="session")
def db_server(tmp_path_factory) -> Dsn:
    """A database server for this run: private (fresh data folder) unless MLBRIDGE_TEST_DSN."""
    if os.environ.get("MLBRIDGE_TEST_DSN"):
        yield Dsn.parse(os.environ["MLBRIDGE_TEST_DSN"])
        return
    server = LocalServer(tmp_path_factory.mktemp("db") / "db")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dsn(db_server: Dsn) -> Dsn:
    """The installed mlbridge schema (named `mlbridge` on the private server)."""
    external = bool(os.environ.get("MLBRIDGE_TEST_DSN"))
    schema = f"mlbridge_t{uuid.uuid4().hex[:8]}" if external else "mlbridge"
    target = Dsn(**{**db_server.__dict__, "database": schema})
    install(target)
    yield target
    if external:
        conn = connect(target, database=False)
        cur = conn.cursor()
        for name in (schema, scratch_schema(schema)):
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        conn.close()


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
        yield proc
