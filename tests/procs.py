"""Start the real parts as processes for the tests: model server, bridge, SQL command-line client."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlbridge.config import Dsn

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None once the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _wait_stopped(pid: int, timeout: float = 1.0) -> bool:
    """Wait until ``pid`` shows as stopped (state T), which follows SIGSTOP within moments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None:
            return False
        if fields[0] in ("T", "t"):
            return True
        time.sleep(0.001)
    return False


def no_open_transactions(dsn: Dsn) -> bool:
    """Whether no session of the database server is inside an InnoDB transaction now."""
    from mlbridge.db import connect

    conn = connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
        return cur.fetchone()[0] == 0
    finally:
        conn.close()


def _env(extra: dict | None = None) -> dict:
    env = {**os.environ, **(extra or {})}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    # A process that crashes in C code writes every thread's Python stack into its log.
    env["PYTHONFAULTHANDLER"] = "1"
    return env


@dataclass
class Process:
    proc: subprocess.Popen
    log: Path
    target: str = ""
    # True when the process may be stopped without leaving anything half done (see paused()).
    settled: Callable[[], bool] | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @contextlib.contextmanager
    def paused(self):
        """SIGSTOP the process for the block (it keeps its connections and claims nothing new),
        SIGCONT after it. With ``settled``, it is stopped at a moment when ``settled()`` holds: a
        bridge stopped inside one of its transactions would hold that transaction's row locks for
        the whole block, and the work of the bridges under test would wait on them (a bridge
        that freezes mid-transaction is a case of its own, not what pausing it is for)."""
        for _ in range(100):
            self.proc.send_signal(signal.SIGSTOP)
            if self.settled is None or (_wait_stopped(self.proc.pid) and self.settled()):
                break
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        try:
            yield self
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def spawn(args: list[str], log: Path, env: dict | None = None) -> Process:
    """Start `args` with its output in `log`; `env`: variables added to this process's own."""
    handle = open(log, "ab")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_env(env), cwd=REPO)
    handle.close()
    return Process(proc, log)


def wait_for(path: Path, process: Process, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.proc.returncode}:\n{process.output()[-4000:]}")
        if time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"{what} not ready in {timeout} s:\n{process.output()[-4000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def start_model_server(model_base: Path, workdir: Path, port: int | None = None, poll_interval: float = 0.5,
                       extra: tuple[str, ...] = (), env: dict | None = None):
    """`mlbridge serve` on 127.0.0.1:`port`; `extra`: more flags (TLS, a token file); `env`: variables added."""
    port = port or free_port()
    ready = workdir / f"server-{port}.ready"
    ready.unlink(missing_ok=True)
    process = spawn([sys.executable, "-m", "mlbridge", "serve", "--model-base", str(model_base), "--port", str(port),
                     "--host", "127.0.0.1", "--poll-interval", str(poll_interval), "--ready-file", str(ready),
                     *extra], workdir / f"server-{port}.log", env=env)
    process.target = f"127.0.0.1:{port}"
    try:
        wait_for(ready, process, "model server")
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def start_bridge(dsn: Dsn, server: str, workdir: Path, *extra: str, env: dict | None = None):
    """A bridge process on `dsn`, given in MLBRIDGE_DSN rather than argv, where `ps` would show its password;
    `env`: more variables (the model server's TLS files and token)."""
    log = workdir / f"bridge-{time.monotonic_ns()}.log"
    process = spawn([sys.executable, "-m", "mlbridge", "bridge", "--server", server, *extra], log,
                    env={**(env or {}), "MLBRIDGE_DSN": str(dsn)})
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def start_trainer(dsn: Dsn, model_base: Path, workdir: Path, *extra: str):
    """A real trainer worker (`mlbridge trainer`) for the jobs of train_model, score_model and explain_model."""
    log = workdir / f"trainer-{time.monotonic_ns()}.log"
    process = spawn([sys.executable, "-m", "mlbridge", "trainer", "--model-base", str(model_base), "--poll", "0.2",
                     *extra], log, env={"MLBRIDGE_DSN": str(dsn)})
    try:
        yield process
    finally:
        process.stop()


def sql_client_binary() -> str:
    found = shutil.which("mariadb") or shutil.which("mysql")
    if not found:
        raise RuntimeError("no mariadb or mysql command-line client on this machine")
    return found


def sql_cli(dsn: Dsn, sql: str, *, user: str | None = None, password: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run SQL through the mariadb/mysql command-line client, as a DBA would: tab-separated output."""
    args = [sql_client_binary(), "--batch", "--raw", "--protocol=TCP", f"--host={dsn.host}", f"--port={dsn.port}",
            f"--user={user or dsn.user}", "--default-character-set=utf8mb4", "-e", sql]
    pw = password if password is not None else dsn.password
    if pw:
        args.insert(1, f"--password={pw}")
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def parse_tsv(text: str) -> list[dict[str, str | None]]:
    lines = [ln for ln in text.splitlines() if ln]
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, [None if v == "NULL" else v for v in ln.split("\t")])) for ln in lines[1:]]


@contextlib.contextmanager
def setting(conn, name: str, value: str):
    """mlbridge.settings `name` at `value` for the block (conn: autocommit, on the schema)."""
    cur = conn.cursor()
    cur.execute("SELECT value FROM settings WHERE name = %s", (name,))
    old = cur.fetchone()[0]
    cur.execute("UPDATE settings SET value = %s WHERE name = %s", (value, name))
    try:
        yield
    finally:
        cur.execute("UPDATE settings SET value = %s WHERE name = %s", (old, name))
