"""The commands that start and stop things: `mlbridge db local` and `mlbridge up`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from ..procs import REPO, free_port, parse_tsv, sql_cli


def _mlbridge(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlbridge", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def test_db_local_start_status_stop(tmp_path):
    env = {**os.environ, "MLBRIDGE_RUN_DIR": str(tmp_path / "run")}
    env.pop("MLBRIDGE_DSN", None)
    started = _mlbridge("db", "local", "start", env=env)
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.strip()
    assert dsn.startswith("mysql://root@127.0.0.1:")
    status = json.loads(_mlbridge("db", "local", "status", env=env).stdout)
    assert status["running"] and status["dsn"] == dsn and status["datadir"].startswith(str(tmp_path))
    again = _mlbridge("db", "local", "start", env=env)  # idempotent: same server
    assert again.stdout.strip() == dsn
    installed = _mlbridge("db", "install", env=env)  # the private DSN is the default
    assert installed.returncode == 0 and "routines created" in installed.stdout, installed.stderr
    assert "up to date" in _mlbridge("db", "install", env=env).stdout
    pid = status["pid"]
    assert _mlbridge("db", "local", "stop", env=env).stdout.strip() == "stopped"
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    stopped = _mlbridge("db", "local", "status", env=env)
    assert stopped.returncode == 3 and not json.loads(stopped.stdout)["running"]
    assert _mlbridge("db", "local", "stop", env=env).stdout.strip() == "not running"


def test_a_killed_private_database_comes_back_on_its_port(tmp_path):
    """After kill -9 its connections linger in TIME_WAIT; a restart must still take the same port,
    or bridges and clients would look for it where it no longer is."""
    from mlbridge.db import connect
    from mlbridge.db.local import LocalServer

    server = LocalServer(tmp_path / "db")
    dsn = server.start()
    try:
        conns = [connect(dsn, database=False) for _ in range(3)]
        for conn in conns:
            conn.cursor().execute("SELECT 1")
        os.kill(server.pid(), signal.SIGKILL)
        time.sleep(1)
        again = server.start()
        assert again.port == dsn.port
        conn = connect(again, database=False)
        conn.close()
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_commands_without_a_database_say_what_to_do(tmp_path):
    env = {**os.environ, "MLBRIDGE_RUN_DIR": str(tmp_path / "empty")}
    env.pop("MLBRIDGE_DSN", None)
    done = _mlbridge("db", "install", env=env)
    assert done.returncode == 2 and "no database given" in done.stderr and "Traceback" not in done.stderr
    done = _mlbridge("db", "install", "--dsn", "mysql://root@127.0.0.1:1/mlbridge", env=env)
    assert done.returncode == 2 and "cannot connect" in done.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_starts_server_and_bridge_and_ctrl_c_stops_them(dsn, bc_model, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(bc_model["path"], base / "bc" / str(bc_model["version"]))
    port = free_port()
    ready = tmp_path / "up.ready"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "mlbridge", "up", "--dsn", str(dsn), "--model-base", str(base),
                             "--port", str(port), "--ready-file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "mlbridge up did not get ready"
            time.sleep(0.1)
        assert _port_open(port)
        done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 5', NULL)")
        assert done.returncode == 0 and len(parse_tsv(done.stdout)) == 5, done.stderr
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert not _port_open(port) and not ready.exists()
    assert _processes_naming(f"127.0.0.1:{port}") == []  # the bridge is gone too


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_status_lists_requests_and_follows_one(dsn, bc_model):
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 20', "
                        "'{\"async\": true}')")
    request = parse_tsv(done.stdout)[0]["request_id"]
    env = {**os.environ}
    followed = _mlbridge("status", "--dsn", str(dsn), "--request", request, env=env)
    assert followed.returncode == 0, followed.stderr
    assert f"request {request}: done, 20 scored, 0 failed" in followed.stdout
    listed = _mlbridge("status", "--dsn", str(dsn), "--limit", "5", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["request_id", "kind", "status", "model"]
    assert any(line.split()[:3] == [request, "predict", "done"] for line in lines[1:])
    missing = _mlbridge("status", "--dsn", str(dsn), "--request", "999999", env=env)
    assert missing.returncode == 2 and "no request 999999" in missing.stderr


def test_evaluate_prints_the_metrics_of_a_version(dsn, bc_model):
    done = _mlbridge("evaluate", "--dsn", str(dsn), "--model", f"bc:{bc_model['version']}", "--query",
                     "SELECT * FROM demo.breast_cancer", "--label", "benign", "--model-base",
                     str(bc_model["path"].parent.parent), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = dict(line.split("\t") for line in done.stdout.strip().splitlines())
    assert float(metrics["accuracy"]) > 0.9 and int(float(metrics["rows"])) == 569
