"""Where things are: the database DSN, the model server address, the model base, the run folder.

Flags win over environment variables (MLBRIDGE_DSN, MLBRIDGE_SERVER, MLBRIDGE_MODEL_BASE,
MLBRIDGE_RUN_DIR); with neither, the private database started by `mlbridge db local start`
under the run folder is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import MlbridgeError

DEFAULT_SERVER = "127.0.0.1:8500"
DEFAULT_SCHEMA = "mlbridge"


def run_dir() -> Path:
    """The folder for private state (database files, pids, logs): `.run/` in the working directory."""
    return Path(os.environ.get("MLBRIDGE_RUN_DIR") or ".run").resolve()


def model_base(flag: str | None = None) -> Path:
    return Path(flag or os.environ.get("MLBRIDGE_MODEL_BASE") or "models").resolve()


def server_target(flag: str | None = None) -> str:
    return flag or os.environ.get("MLBRIDGE_SERVER") or DEFAULT_SERVER


@dataclass
class Dsn:
    user: str = "root"
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    database: str = DEFAULT_SCHEMA
    unix_socket: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Dsn:
        """Parse `mysql://user:pass@host:port/db?unix_socket=/path&ssl_ca=...`."""
        parts = urlsplit(text)
        if parts.scheme not in ("mysql", "mariadb"):
            raise MlbridgeError(
                f"mlbridge: DSN {text!r} must look like mysql://user:pass@host:port/mlbridge"
            )
        try:
            port = parts.port or 3306
        except ValueError:
            raise MlbridgeError(f"mlbridge: DSN {text!r} has a port that is not a number") from None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            host=parts.hostname or "127.0.0.1",
            port=port,
            database=unquote(parts.path.lstrip("/")) or DEFAULT_SCHEMA,
            unix_socket=query.pop("unix_socket", None),
            options=query,
        )

    def __str__(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        text = f"mysql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
        extra = dict(self.options)
        if self.unix_socket:
            extra = {"unix_socket": self.unix_socket, **extra}
        if extra:
            text += "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in extra.items())
        return text

    def redacted(self) -> str:
        text = str(Dsn(**{**self.__dict__, "password": "PASSWORD" if self.password else ""}))
        return text.replace(":PASSWORD@", ":***@")

    def connect_args(self, database: bool = True) -> dict:
        args: dict = {"user": self.user, "password": self.password, "host": self.host, "port": self.port}
        if self.unix_socket:
            args["unix_socket"] = self.unix_socket
        if database:
            args["database"] = self.database
        for key in ("ssl_ca", "ssl_cert", "ssl_key"):
            if key in self.options:
                args[key] = self.options[key]
        if self.options.get("ssl_verify_cert") in ("1", "true"):
            args["ssl_verify_cert"] = True
        return args


def local_dsn_file() -> Path:
    return run_dir() / "db" / "dsn"


def resolve_dsn(flag: str | None = None) -> Dsn:
    text = flag or os.environ.get("MLBRIDGE_DSN")
    if not text:
        path = local_dsn_file()
        if path.exists():
            text = path.read_text().strip()
    if not text:
        raise MlbridgeError(
            "mlbridge: no database given: pass --dsn mysql://user:pass@host:port/mlbridge, "
            "set MLBRIDGE_DSN, or start the private one with `mlbridge db local start`"
        )
    return Dsn.parse(text)
