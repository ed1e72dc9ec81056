"""Where things are: the database DSN, the model server address, the model base, the run folder.

Flags win over environment variables (MLBRIDGE_DSN, MLBRIDGE_SERVER, MLBRIDGE_MODEL_BASE,
MLBRIDGE_RUN_DIR), and both over the settings file (MLBRIDGE_SETTINGS or --settings, see
settings.py); with none of them, the private database started by `mlbridge db local start`
under the run folder is used.

A password need not be on the command line, where `ps` shows it to every user of the machine:
a DSN without one takes MLBRIDGE_DB_PASSWORD, else the settings file's `password`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import MlbridgeError
from .serving_constants import DEFAULT_PORT

DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_SCHEMA = "mlbridge"

# The DSN's query options, under mysql-connector-python's own names. The files are PEM paths.
TLS_FILES = {
    "ssl_ca": "the CA certificate that signed the server's certificate",
    "ssl_cert": "the client certificate",
    "ssl_key": "the client certificate's private key",
}
TLS_FLAGS = ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")
OPTIONS = ("unix_socket", *TLS_FILES, *TLS_FLAGS)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def run_dir() -> Path:
    """The folder for private state (database files, pids, logs): `.run/` in the working directory."""
    return Path(os.environ.get("MLBRIDGE_RUN_DIR") or ".run").resolve()


def model_base(flag: str | None = None) -> Path:
    return Path(flag or os.environ.get("MLBRIDGE_MODEL_BASE") or "models").resolve()


def server_target(flag: str | None = None) -> str:
    return flag or os.environ.get("MLBRIDGE_SERVER") or DEFAULT_SERVER


def check_option(name: str, value: object) -> str:
    """An option's value as the DSN writes it (flags as true/false); an unknown name or a flag
    that is not a truth value is an error naming what is allowed."""
    if name not in OPTIONS:
        raise MlbridgeError(f"mlbridge: DSN option {name} is unknown; known: {', '.join(OPTIONS)}")
    if name in TLS_FLAGS:
        text = str(value).strip().lower()
        if text in _TRUE:
            return "true"
        if text in _FALSE:
            return "false"
        raise MlbridgeError(f"mlbridge: DSN option {name}={value!r} must be true or false")
    if not isinstance(value, str) or not value:
        raise MlbridgeError(f"mlbridge: DSN option {name} must be a non-empty path")
    return value


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
        query = {k: check_option(k, v[-1]) for k, v in parse_qs(parts.query).items()}
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
        args.update(self.tls_args())
        return args

    def tls_args(self) -> dict:
        """The TLS arguments of mysql.connector.connect(), checked here first, so that a mistake
        reads as what to fix rather than as the driver's or OpenSSL's words.

        ssl_ca turns on ssl_verify_cert unless the DSN says ssl_verify_cert=false (a CA given is a
        CA meant to be checked, as with the mysql client), and ssl_verify_identity needs it too.
        With no options the driver still uses TLS where the server offers it, unverified;
        ssl_disabled=true turns it off. A unix_socket connection is local and never encrypted."""
        opts = {k: check_option(k, v) for k, v in self.options.items()}
        flags = {k: opts[k] == "true" for k in TLS_FLAGS if k in opts}
        files = {k: opts[k] for k in TLS_FILES if k in opts}
        if flags.get("ssl_disabled"):
            clash = [k for k in opts if k != "ssl_disabled" and (k in files or flags.get(k))]
            if clash:
                raise MlbridgeError(f"mlbridge: DSN option ssl_disabled=true contradicts {', '.join(clash)}: "
                                    "drop one or the other")
            return {"ssl_disabled": True}
        if ("ssl_cert" in files) != ("ssl_key" in files):
            raise MlbridgeError("mlbridge: DSN options ssl_cert and ssl_key go together: give both "
                                "(the client certificate and its key) or neither")
        for key, path in files.items():
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise MlbridgeError(f"mlbridge: DSN option {key}={path}: no such readable file; give the path of "
                                    f"{TLS_FILES[key]} (PEM)")
        if flags.get("ssl_verify_identity") and flags.get("ssl_verify_cert") is False:
            raise MlbridgeError("mlbridge: DSN option ssl_verify_identity=true needs the certificate checked: "
                                "drop ssl_verify_cert=false")
        if "ssl_ca" in files or flags.get("ssl_verify_identity"):
            flags.setdefault("ssl_verify_cert", True)
        if flags.get("ssl_verify_cert") and "ssl_ca" not in files:
            raise MlbridgeError("mlbridge: DSN option ssl_verify_cert=true needs ssl_ca, the CA certificate that "
                                "signed the server's certificate")
        return {**files, **{k: v for k, v in flags.items() if v}}


def local_dsn_file() -> Path:
    return run_dir() / "db" / "dsn"


def given_dsn(flag: str | None = None) -> Dsn | None:
    """The DSN named by the flag, MLBRIDGE_DSN or the settings file, completed from
    MLBRIDGE_DB_PASSWORD and the settings file where it leaves things out; None where none
    names one (the private database is then meant)."""
    from .settings import database_settings  # settings.py checks its keys against OPTIONS here

    settings = database_settings()
    text = flag or os.environ.get("MLBRIDGE_DSN") or settings.get("dsn")
    if not text:
        return None
    dsn = Dsn.parse(text)
    if not dsn.password:
        dsn.password = os.environ.get("MLBRIDGE_DB_PASSWORD") or settings.get("password", "")
    if not dsn.unix_socket and "unix_socket" in settings:
        dsn.unix_socket = settings["unix_socket"]
    for key in OPTIONS[1:]:
        if key in settings:
            dsn.options.setdefault(key, settings[key])
    return dsn


def resolve_dsn(flag: str | None = None) -> Dsn:
    dsn = given_dsn(flag)
    if dsn is not None:
        return dsn
    path = local_dsn_file()
    text = path.read_text().strip() if path.exists() else ""
    if not text:
        raise MlbridgeError(
            "mlbridge: no database given: pass --dsn mysql://user@host:port/mlbridge, "
            "set MLBRIDGE_DSN or MLBRIDGE_SETTINGS, or start the private one with `mlbridge db local start`"
        )
    # The private database's own DSN, as written at its start: nothing of the settings applies.
    return Dsn.parse(text)
