"""TLS to the database, and passwords off the command line, with real processes: a private server
started with TLS (`LocalServer(root, tls=True)`: its own throwaway CA, require_secure_transport),
an account created REQUIRE SSL and one REQUIRE X509, reached by the driver, the `mlbridge` CLI and
a bridge process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from mlbridge.config import Dsn
from mlbridge.db import certs, connect
from mlbridge.db.accounts import Account, grant
from mlbridge.db.install import DEFINER, install
from mlbridge.db.local import LocalServer
from mlbridge.errors import MlbridgeError

from ..procs import REPO, start_bridge, start_model_server

PASSWORD = "tls-app-secret"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The TLS server (its root DSN, verified), the schema installed over TLS, and the accounts."""
    server = LocalServer(tmp_path_factory.mktemp("tls") / "db", tls=True)
    root = server.start()
    try:
        install(root)
        conn = connect(root)
        cur = conn.cursor()
        cur.execute(f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")
        cur.execute("CREATE USER 'certified'@'%' REQUIRE X509")
        for user in ("app", "certified"):
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'")
            grant(conn, root.database, Account(user), "mlbridge_user", DEFINER)  # registered: it calls the routines
        conn.close()
        yield server, root
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def _as(dsn: Dsn, **changes) -> Dsn:
    return Dsn(**{**dsn.__dict__, "options": dict(dsn.options), **changes})


def _cipher(dsn: Dsn) -> str:
    conn = connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]
    finally:
        conn.close()


def _mlbridge(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MLBRIDGE_DSN", "MLBRIDGE_DB_PASSWORD",
                                                                "MLBRIDGE_SETTINGS")}
    return subprocess.run([sys.executable, "-m", "mlbridge", *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=timeout, cwd=REPO)


def test_the_private_dsn_verifies_the_server(tls):
    server, root = tls
    assert root.options == {"ssl_ca": str(server.tls_dir / "ca.pem"), "ssl_verify_cert": "true"}
    assert server.status()["tls"] and server.dsn_file.read_text().strip() == str(root)
    assert _cipher(root)
    assert _cipher(_as(root, user="app", password=PASSWORD, host="localhost",
                       options={**root.options, "ssl_verify_identity": "true"}))


def test_without_tls_the_server_refuses_in_its_own_words(tls):
    _, root = tls
    for dsn in (_as(root, user="app", password=PASSWORD, options={"ssl_disabled": "true"}),
                _as(root, options={"ssl_disabled": "true"})):  # root: require_secure_transport
        with pytest.raises(MlbridgeError, match="mlbridge: cannot connect to .*Access denied for user") as caught:
            connect(dsn)
        assert caught.value.__cause__.errno == 1045  # ER_ACCESS_DENIED_ERROR, from the server


def test_a_wrong_ca_fails_verification_with_what_to_fix(tls, tmp_path):
    _, root = tls
    other = certs.ensure_authority(tmp_path / "other") / certs.CA
    # OpenSSL's words differ between the driver's C extension and its pure-Python TLS; ours do not.
    with pytest.raises(MlbridgeError, match=r"certificate verify failed.*; the server's certificate does not check out "
                                            rf"against ssl_ca={re.escape(str(other))}: give the CA that signed it"):
        connect(_as(root, options={"ssl_ca": str(other)}))


def test_a_client_certificate(tls):
    server, root = tls
    certified = _as(root, user="certified")
    with pytest.raises(MlbridgeError, match="Access denied"):
        connect(certified)  # REQUIRE X509: TLS alone is not enough
    certified.options.update(ssl_cert=str(server.tls_dir / certs.CLIENT_CERT),
                             ssl_key=str(server.tls_dir / certs.CLIENT_KEY))
    assert _cipher(certified)


def test_status_cli_with_the_password_from_the_environment(tls):
    _, root = tls
    app = str(_as(root, user="app"))
    done = _mlbridge("status", env={"MLBRIDGE_DSN": app, "MLBRIDGE_DB_PASSWORD": PASSWORD})
    assert done.returncode == 0 and done.stdout.strip() == "no requests", done.stderr
    done = _mlbridge("status", env={"MLBRIDGE_DSN": app})
    assert done.returncode == 2 and "Access denied for user 'app'" in done.stderr and "Traceback" not in done.stderr


def test_status_cli_with_a_settings_file_that_must_be_private(tls, tmp_path):
    _, root = tls
    path = tmp_path / "settings.toml"
    path.write_text(f'[database]\ndsn = "{_as(root, user="app", options={})}"\npassword = "{PASSWORD}"\n'
                    f'ssl_ca = "{root.options["ssl_ca"]}"\nssl_verify_identity = true\n')
    path.chmod(0o600)
    done = _mlbridge("--settings", str(path), "status", env={})
    assert done.returncode == 0 and done.stdout.strip() == "no requests", done.stderr
    path.chmod(0o644)
    done = _mlbridge("status", env={"MLBRIDGE_SETTINGS": str(path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"holds a password but others may read it (mode 0644): make it its owner's alone with `chmod 600 {path}`" \
        in done.stderr


def test_train_serve_and_predict_over_tls(tls, tmp_path):
    """The trainer (its password from a settings file), a bridge (its DSN in the environment, as
    `mlbridge up` passes it, never in argv) and a caller, all as the REQUIRE SSL account."""
    _, root = tls
    app = _as(root, user="app", password=PASSWORD)
    conn = connect(root)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE tlsdemo")
    cur.execute("CREATE TABLE tlsdemo.t (id INT PRIMARY KEY, x DOUBLE, y DOUBLE)")
    cur.executemany("INSERT INTO tlsdemo.t VALUES (%s, %s, %s)", [(i, i / 100, 2 * i / 100 + 1) for i in range(300)])
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[database]\npassword = "{PASSWORD}"\n')
    settings.chmod(0o600)
    base = tmp_path / "models"
    done = _mlbridge("train", "--query", "SELECT * FROM tlsdemo.t", "--label", "y", "--model", "tiny",
                     "--model-type", "linear", "--epochs", "3", "--quiet", "--model-base", str(base),
                     env={"MLBRIDGE_DSN": str(_as(root, user="app")), "MLBRIDGE_SETTINGS": str(settings),
                          "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert done.returncode == 0 and "model tiny:1" in done.stdout, done.stderr[-3000:]
    with start_model_server(base, tmp_path) as server, start_bridge(app, server.target, tmp_path) as bridge:
        with open(f"/proc/{bridge.proc.pid}/cmdline", "rb") as f:
            assert PASSWORD.encode() not in f.read()
        caller = connect(app)
        call = caller.cursor()
        call.callproc("predict_scores", ("tiny", "SELECT id, x FROM tlsdemo.t WHERE id < 5", '{"timeout": 60}'))
        result = next(call.stored_results())
        rows = [dict(zip([d[0] for d in result.description], row)) for row in result.fetchall()]
        caller.close()
        assert len(rows) == 5 and all(r["error"] is None for r in rows), f"{rows} {bridge.output()[-3000:]}"
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        assert cur.fetchone()[0] >= 3  # the bridge's connections, TLS all: REQUIRE SSL
        output = bridge.output()
    conn.close()
    assert "queue mysql://app:***@127.0.0.1" in output and "ssl_ca=" in output
    assert PASSWORD not in output and "reconnecting" not in output and "Traceback" not in output


def test_db_local_start_tls_cli(tmp_path):
    env = {"MLBRIDGE_RUN_DIR": str(tmp_path / "run")}
    try:
        plain = _mlbridge("db", "local", "start", env=env)
        assert plain.returncode == 0 and "ssl_ca" not in plain.stdout, plain.stderr
        refused = _mlbridge("db", "local", "start", "--tls", env=env)  # running without TLS: say so
        assert refused.returncode == 2 and "runs without TLS: stop it first" in refused.stderr
        assert _mlbridge("db", "local", "stop", env=env).returncode == 0
        started = _mlbridge("db", "local", "start", "--tls", env=env)
        assert started.returncode == 0, started.stderr
        dsn = started.stdout.strip()
        assert dsn.endswith(f"?ssl_ca={tmp_path}/run/db/tls/ca.pem&ssl_verify_cert=true")
        assert _mlbridge("db", "local", "start", env=env).stdout.strip() == dsn  # as it runs
        installed = _mlbridge("db", "install", env=env)  # the private DSN, over TLS
        assert installed.returncode == 0 and "routines created" in installed.stdout, installed.stderr
        status = _mlbridge("db", "local", "status", env=env)
        assert '"tls": true' in status.stdout and status.returncode == 0
    finally:
        _mlbridge("db", "local", "stop", env=env)
