"""A private database server for one benchmark run, in a temporary folder that goes with it."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from mlbridge.config import Dsn
from mlbridge.db.install import install
from mlbridge.db.local import LocalServer


def private_database(stack: contextlib.ExitStack) -> tuple[Path, LocalServer, Dsn]:
    """(folder, server, DSN of its installed mlbridge schema); stopped and removed as `stack` closes."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbridge-bench-")))
    server = LocalServer(tmp / "db")
    dsn = server.start()
    stack.callback(server.stop)
    install(dsn)
    return tmp, server, dsn
