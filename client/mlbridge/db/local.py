"""`mlbridge db local`: a private MySQL-compatible server under the run folder.

Initialised from the machine's own `mariadbd` (or `mysqld`) binary, with its own data folder,
port and socket under `.run/db/`, stopped by its own pid. Nothing else on the machine is touched:
a system server on 3306 keeps running beside it.

With TLS (`LocalServer(root, tls=True)`, `mlbridge db local start --tls`) it gets a throwaway
certificate authority under `root/tls/` (db/certs.py), refuses TCP clients that do not use TLS
(require_secure_transport; the socket stays open to the owner), and its DSN carries ssl_ca, so
clients verify the server's certificate.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Dsn, run_dir
from ..errors import MlbridgeError
from . import certs

SEARCH_PATH = ["/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin"]


def _which(*names: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SEARCH_PATH)
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def server_binary() -> str:
    found = _which("mariadbd", "mysqld")
    if not found:
        raise MlbridgeError(
            "mlbridge: no mariadbd or mysqld on this machine: install one "
            "(apt-get install mariadb-server), or point mlbridge at a server with --dsn / MLBRIDGE_DSN"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether the server can listen on `port`. SO_REUSEADDR, as mysqld sets it: connections of a
    killed server linger in TIME_WAIT for a minute, and must not push a restart to another port
    (clients and bridges find the server again at the port they know)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie child of ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


@dataclass
class LocalServer:
    """The private server whose files live in `root` (default `.run/db`); `tls`: start it with TLS."""

    root: Path
    tls: bool = False

    @classmethod
    def default(cls) -> LocalServer:
        return cls(run_dir() / "db")

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "mysqld.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "mysqld.log"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def dsn_file(self) -> Path:
        return self.root / "dsn"

    @property
    def tls_dir(self) -> Path:
        """The CA certificate, the server's certificate and key, a client certificate and key."""
        return self.root / "tls"

    @property
    def tls_marker(self) -> Path:
        """Present while the server was last started with TLS: its DSN then carries ssl_ca."""
        return self.root / "tls-on"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def dsn(self, database: str = "mlbridge") -> Dsn:
        port = self.port()
        if port is None:
            raise MlbridgeError("mlbridge: the private database has never been started: `mlbridge db local start`")
        options = {}
        if self.tls_marker.exists():
            options = {"ssl_ca": str(self.tls_dir / certs.CA), "ssl_verify_cert": "true"}
        return Dsn(user="root", host="127.0.0.1", port=port, database=database, options=options)

    # -- life cycle -------------------------------------------------------------------------

    def _initialise(self, binary: str) -> None:
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "data.init"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        user = _current_user()
        if "mariadb" in Path(binary).name or _is_mariadb(binary):
            installer = _which("mariadb-install-db", "mysql_install_db")
            if not installer:
                raise MlbridgeError("mlbridge: mariadb-install-db is missing: reinstall mariadb-server")
            cmd = [
                installer, "--no-defaults", f"--datadir={tmp}", f"--user={user}",
                "--auth-root-authentication-method=normal", "--skip-test-db",
            ]
        else:  # MySQL 8: --initialize-insecure makes root@localhost with no password
            cmd = [binary, "--no-defaults", "--initialize-insecure", f"--datadir={tmp}", f"--user={user}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [ln for ln in (done.stderr + done.stdout).splitlines() if "ERROR" in ln]
            raise MlbridgeError(
                f"mlbridge: initialising the private database with {cmd[0]} failed: "
                + (errors[0] if errors else f"exit code {done.returncode}")
            )
        tmp.rename(self.datadir)

    def start(self, timeout: float = 60.0) -> Dsn:
        """Start the server (initialising it on first use); return its DSN. Idempotent: a running
        server is left as it runs, and its DSN returned (with or without TLS)."""
        if self.pid():
            if self.tls and not self.tls_marker.exists():
                raise MlbridgeError("mlbridge: the private database runs without TLS: stop it first "
                                    "(`mlbridge db local stop`), then start it with --tls")
            self._write_dsn()
            return self.dsn()
        binary = server_binary()
        if not (self.datadir / "mysql").is_dir():
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._initialise(binary)
        port = self.port()
        if port is None or not _port_free(port):
            port = _free_port()
        self.port_file.write_text(f"{port}\n")
        (self.root / "tmp").mkdir(exist_ok=True)
        args = [
            binary, "--no-defaults",
            f"--datadir={self.datadir}", f"--socket={self.socket}", f"--pid-file={self.pid_file}",
            f"--port={port}", "--bind-address=127.0.0.1", f"--log-error={self.log_file}",
            f"--user={_current_user()}",
            # Its own scratch folder: large sorts and temporary tables stay under .run/ with the
            # data, out of a shared /tmp that other programs clean.
            f"--tmpdir={self.root / 'tmp'}",
            # A private development and test instance: small, and quick to start and to stop.
            "--innodb-buffer-pool-size=1G", "--innodb-log-file-size=128M",
            "--innodb-flush-log-at-trx-commit=2", "--max-connections=300",
            "--skip-log-bin", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            # SKIP LOCKED with replication needs row-based binary logs; harmless without them.
            "--binlog-format=ROW",
        ]
        if self.tls:
            folder = certs.ensure_authority(self.tls_dir)
            args += [f"--ssl-ca={folder / certs.CA}", f"--ssl-cert={folder / certs.SERVER_CERT}",
                     f"--ssl-key={folder / certs.SERVER_KEY}", "--require-secure-transport=ON"]
            self.tls_marker.touch()
        else:
            self.tls_marker.unlink(missing_ok=True)
        with open(self.root / "mysqld.out", "ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise MlbridgeError(
                    f"mlbridge: the private database exited at start (code {proc.returncode}); see {self.log_file}"
                )
            if self.socket.exists() and self._ping():
                break
            time.sleep(0.1)
        else:
            proc.terminate()
            raise MlbridgeError(f"mlbridge: the private database did not start in {timeout:.0f} s; see {self.log_file}")
        self.pid_file.write_text(f"{proc.pid}\n")
        self._grant_tcp_root()
        self._write_dsn()
        return self.dsn()

    def _ping(self) -> bool:
        from . import connect  # lazy: the module imports mysql.connector

        try:
            conn = connect(Dsn(unix_socket=str(self.socket), database=""), database=False)
        except MlbridgeError:
            return False
        conn.close()
        return True

    def _grant_tcp_root(self) -> None:
        """root@localhost exists after initialisation; TCP clients arrive as 127.0.0.1 or ::1."""
        from . import connect

        conn = connect(Dsn(unix_socket=str(self.socket), database=""), database=False)
        try:
            cur = conn.cursor()
            for host in ("127.0.0.1", "::1"):
                cur.execute(f"CREATE USER IF NOT EXISTS 'root'@'{host}'")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION")
        finally:
            conn.close()

    def _write_dsn(self) -> None:
        self.dsn_file.write_text(str(self.dsn()) + "\n")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server by its own pid; False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
                break
            time.sleep(0.1)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict:
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "port": self.port(),
            "tls": self.tls_marker.exists(),
            "socket": str(self.socket),
            "datadir": str(self.datadir),
            "dsn": str(self.dsn()) if self.port() else None,
        }


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _is_mariadb(binary: str) -> bool:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return "mariadb" in (done.stdout + done.stderr).lower()
