"""`mlbridge up`: the database (private unless --dsn), the model server, the bridge and the
trainer worker together; Ctrl-C (or SIGTERM) stops all of them, and the private database if
this command started it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import Dsn, given_dsn
from .db.install import install
from .errors import MlbridgeError

log = logging.getLogger("mlbridge.up")


def _wait_for_file(path: Path, proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise MlbridgeError(f"mlbridge: the {what} exited at start (code {proc.returncode}); see its log above")
        if time.monotonic() > deadline:
            raise MlbridgeError(f"mlbridge: the {what} did not become ready in {timeout:.0f} s")
        time.sleep(0.1)


def _stop(procs: list[tuple[str, subprocess.Popen]], timeout: float = 20.0) -> None:
    for _, proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in reversed(procs):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("up: the %s did not stop in time; killing it", name)
            proc.kill()
            proc.wait()


def child_env(dsn: Dsn) -> dict[str, str]:
    """The environment of a child that connects to `dsn`: the whole DSN in MLBRIDGE_DSN, where
    `ps` does not show it (argv is readable by every user, /proc/PID/environ by the owner alone).
    It is complete already, so the password and settings it was completed from are left out."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLBRIDGE_DB_PASSWORD", "MLBRIDGE_SETTINGS")}
    env["MLBRIDGE_DSN"] = str(dsn)
    return env


def up(dsn_flag: str | None, base: Path, port: int, ready_file: str | None = None) -> int:
    from .db.local import LocalServer

    local = None
    dsn = given_dsn(dsn_flag)
    started_db = False
    if dsn is None:
        local = LocalServer.default()
        started_db = local.pid() is None
        dsn = local.start()
        log.info("up: private database %s", dsn)
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        install(dsn)
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mlbridge-up-") as tmp:
            server_ready = Path(tmp) / "server.ready"
            server = subprocess.Popen(
                [sys.executable, "-m", "mlbridge", "serve", "--model-base", str(base), "--port", str(port),
                 "--host", "127.0.0.1", "--ready-file", str(server_ready)],
                start_new_session=True,
            )
            procs.append(("model server", server))
            _wait_for_file(server_ready, server, "model server", timeout=180)
            bridge = subprocess.Popen(
                [sys.executable, "-m", "mlbridge", "bridge", "--server", f"127.0.0.1:{port}"],
                env=child_env(dsn), start_new_session=True,
            )
            procs.append(("bridge", bridge))
            trainer = subprocess.Popen(
                [sys.executable, "-m", "mlbridge", "trainer", "--model-base", str(base)],
                env=child_env(dsn), start_new_session=True,
            )
            procs.append(("trainer", trainer))
            print(f"mlbridge up: database {dsn.redacted()}, model server 127.0.0.1:{port} ({base}), bridge and "
                  "trainer running; Ctrl-C stops all", flush=True)
            if ready_file:
                Path(ready_file).write_text(f"{dsn.redacted()}\n")
            while stopping["signal"] is None:
                for name, proc in procs:
                    if proc.poll() is not None:
                        raise MlbridgeError(f"mlbridge: the {name} exited (code {proc.returncode}); stopping all")
                time.sleep(0.2)
        return 0
    finally:
        _stop(procs)
        if local is not None and started_db:
            local.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
        if ready_file:
            Path(ready_file).unlink(missing_ok=True)
