"""mysql-connector's C extension must load in the processes mlbridge starts (fetches are 2-3x
slower without it), even where Python's ssl module gets imported early."""

import subprocess
import sys


def test_c_extension_loads_in_mlbridge_processes():
    # mlbridge is imported first, as in its own commands. (A program that imports grpc or ssl
    # before mlbridge loses the extension: import mlbridge first.)
    code = "import mlbridge.cli, mlbridge.bridge, mlbridge.db, ssl; import mysql.connector as m; print(m.HAVE_CEXT)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_connections_use_it(dsn):
    code = (f"from mlbridge.db import connect; from mlbridge.config import Dsn; "
            f"print(type(connect(Dsn.parse({str(dsn)!r}))).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "CMySQLConnection", done.stderr
