"""The model server's settings: one object, filled from flags, the environment and the settings
file, and one command line for both ways to start the server (`mlbridge serve` and
`python -m mlbridge_server.serving`).

Which wins: flags > environment > settings file > defaults, value by value.

- Flags: ``--model-base``, ``--port``, ... (``add_arguments``; each setting's flag is its name
  with dashes, booleans as ``--enable-batching`` / ``--no-batching``).
- Environment: ``MLBRIDGE_SERVING_<NAME>`` for every setting (``MLBRIDGE_SERVING_PORT=8501``,
  ``MLBRIDGE_SERVING_ENABLE_BATCHING=false``), and the older names that stand in for some:
  ``MLBRIDGE_MODEL_BASE`` (shared with the trainer and the CLI) for model_base,
  ``MLBRIDGE_SERVER_TOKEN_FILE`` for token_file, ``MLBRIDGE_SERVER_TOKEN`` (the token itself).
  Where both a ``MLBRIDGE_SERVING_`` name and an older one are set, the ``MLBRIDGE_SERVING_`` one
  wins. An empty variable counts as unset.
- Settings file: the ``[serving]`` section of the TOML file MLBRIDGE_SETTINGS (or
  ``--settings``) names, the one that holds ``[database]`` (see settings.py), keys named as the
  settings::

      [serving]
      model_base = "/srv/models"
      port = 8500
      metrics_port = 8502
      log_format = "json"
      enable_batching = true

  Relative paths in the file are relative to the file's folder, so that the file means the same
  wherever the server is started from; relative paths in flags and variables are relative to
  the working directory, as usual.

The token is never a flag (argv is readable by every user of the machine): ``token_file`` names
a file that holds it, or ``MLBRIDGE_SERVER_TOKEN`` holds it. Its source follows the same order:
a --token-file flag, then MLBRIDGE_SERVING_TOKEN_FILE, MLBRIDGE_SERVER_TOKEN_FILE,
MLBRIDGE_SERVER_TOKEN, then the file's token_file.

The batching settings (enable_batching ... max_enqueued_batches) and load_threads are named and
defaulted as TF Serving's batching parameters; the defaults suit a 2-core machine. The two
TensorFlow thread settings are TF Serving's --tensorflow_intra_op_parallelism and
--tensorflow_inter_op_parallelism, applied where versions run (the server process, or each model process
under model_isolation = "process").

No TensorFlow here: `mlbridge serve --help` works without the server package.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MlbridgeError
from .serving_constants import DEFAULT_PORT, MAX_MESSAGE_BYTES
from .serving_security import ENV_TOKEN, ENV_TOKEN_FILE, check_token, read_token_file

ENV_PREFIX = "MLBRIDGE_SERVING_"
LOG_FORMATS = ("text", "json")
MODEL_ISOLATIONS = ("process", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# What a setting's value may be: "path", "str", "int" (with a minimum), "port", "float" (with a
# minimum), "bool", "level", "choice" (one of its ``choices``).


def _setting(default: Any, kind: str, help: str, *, minimum: float | None = None,
             env: tuple[str, ...] = (), flag: str | None = None, shown: str | None = None,
             choices: tuple[str, ...] = ()) -> Any:
    """A setting; ``shown``: how --help words a default of None; ``choices``: a "choice"'s values."""
    return field(default=default, metadata={"kind": kind, "help": help, "minimum": minimum,
                                            "env": env, "flag": flag, "shown": shown, "choices": choices})


@dataclass(frozen=True)
class ServerSettings:
    """Everything that decides how the model server runs. Construct it directly (tests,
    embedding) or with ``resolve()`` from flags, environment and settings file."""

    model_base: str = _setting("models", "path", "folder of models, NAME/VERSION/saved_model.pb",
                               env=("MLBRIDGE_MODEL_BASE",))
    host: str = _setting("127.0.0.1", "str",
                         "interface to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)")
    port: int = _setting(DEFAULT_PORT, "port", "gRPC port (0: any free port)")
    poll_interval: float = _setting(2.0, "float", "seconds between scans of the model base", minimum=0.01)
    model_config_file: str | None = _setting(
        None, "path", "TF Serving's ModelServerConfig in text format: which models, their base paths "
        "(relative to the model base, or absolute), version policies and labels",
        shown="every model folder, its newest version")
    model_config_file_poll_wait_seconds: float = _setting(
        0.0, "float", "seconds between checks of --model-config-file for changes, applied as "
        "HandleReloadConfigRequest would (0: read at start only)", minimum=0)
    metrics_port: int | None = _setting(None, "port", "Prometheus /metrics port", shown="no metrics")
    metrics_host: str | None = _setting(None, "str", "interface of /metrics", shown="--host's")
    tls_cert: str | None = _setting(None, "path", "serve TLS with this certificate (chain), PEM")
    tls_key: str | None = _setting(None, "path", "the private key of --tls-cert, PEM")
    tls_client_ca: str | None = _setting(
        None, "path", "require client certificates signed by this CA (mTLS), PEM; needs --tls-cert")
    token_file: str | None = _setting(
        None, "path", "require `authorization: Bearer <token>` with this file's token on every call "
        f"but the health checks (or ${ENV_TOKEN}: the token itself)", env=(ENV_TOKEN_FILE,))
    max_workers: int = _setting(16, "int", "gRPC threads answering requests", minimum=1)
    keep_older: int = _setting(2, "int", "older versions kept loaded per model for requests pinned to "
                               "them (without a model config)", minimum=0)
    shutdown_grace: float = _setting(
        10.0, "float", "seconds that requests running at SIGTERM get to finish before they are cut off",
        minimum=0)
    log_format: str = _setting("text", "choice", "text, or json: one object a line (time, level, "
                               "logger, message, and model and version where known)",
                               choices=LOG_FORMATS)
    log_level: str = _setting("INFO", "level", "DEBUG, INFO, WARNING or ERROR")
    max_request_elements: int = _setting(
        64 * 1024 * 1024, "int", "most tensor elements of a request's inputs together", minimum=1)
    max_request_bytes: int = _setting(
        MAX_MESSAGE_BYTES, "int", "most bytes of a request's inputs together, decoded", minimum=1)
    enable_batching: bool = _setting(
        True, "bool", "batch concurrent Predict calls of one model version together (a lone call "
        "runs at once)", flag="--enable-batching")
    max_batch_size: int = _setting(1024, "int", "most rows in one batch", minimum=1)
    batch_timeout_micros: int = _setting(
        1000, "int", "longest wait for a batch to fill, in microseconds", minimum=0)
    num_batch_threads: int = _setting(2, "int", "threads running batches", minimum=1)
    max_enqueued_batches: int = _setting(
        64, "int", "batches waiting per model version before calls are refused UNAVAILABLE", minimum=1)
    load_threads: int = _setting(2, "int", "models loaded at the same time", minimum=1)
    tensorflow_intra_op_parallelism: int = _setting(
        0, "int", "threads one TensorFlow op may use (0: TensorFlow's choice, "
        "the number of cores)", minimum=0)
    tensorflow_inter_op_parallelism: int = _setting(
        0, "int", "TensorFlow ops of one call run at the same time (0: TensorFlow's "
        "choice)", minimum=0)
    model_isolation: str = _setting(
        "none", "choice", "where each loaded version runs: none (in the server process, as TF "
        "Serving runs them: the fastest call) or process (a model process of its own: a crash or a "
        "hung load takes only that version down, at 0.2-0.5 ms more a call)",
        choices=MODEL_ISOLATIONS)
    # Not a setting of its own: resolved from token_file or $MLBRIDGE_SERVER_TOKEN (see above).
    token: str | None = field(default=None, repr=False, compare=False, metadata={"kind": None})

    def __post_init__(self) -> None:
        for f in settings_fields():
            value = getattr(self, f.name)
            if value is not None or f.default is not None:
                _check(f, value, f"setting {f.name}")
        if self.token is not None:
            check_token(self.token)
        elif self.token_file:
            # ServerSettings(token_file=...) built directly must not serve without its token.
            object.__setattr__(self, "token", read_token_file(self.token_file))

    def __repr__(self) -> str:  # never the token
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in settings_fields())
        return f"ServerSettings({shown}, token={'***' if self.token else None})"

    def replace(self, **changes: Any) -> ServerSettings:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise MlbridgeError(f"mlbridge: unknown model server setting {', '.join(unknown)}; "
                                f"known: {', '.join(names())}")
        if "token_file" in changes and "token" not in changes:
            changes["token"] = None  # read from the new file
        return dataclasses.replace(self, **changes)

    @classmethod
    def resolve(cls, args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None,
                settings_file: Path | str | None = None) -> ServerSettings:
        """The settings from the flags (``args`` from a parser ``add_arguments`` built), the
        environment (``environ``, default os.environ) and the settings file (``settings_file``,
        default $MLBRIDGE_SETTINGS' [serving]), in that order of precedence."""
        environ = os.environ if environ is None else environ
        if settings_file is None and environ.get("MLBRIDGE_SETTINGS"):
            settings_file = environ["MLBRIDGE_SETTINGS"]
        values: dict[str, Any] = {}
        file_token_file = None
        if settings_file:
            values.update(from_file(Path(settings_file)))
            file_token_file = values.pop("token_file", None)
        values.update(from_environ(environ))
        if args is not None:
            for f in settings_fields():
                value = getattr(args, f.name, None)
                if value is not None:
                    values[f.name] = value
        token_file = values.get("token_file")
        if token_file:
            token = read_token_file(token_file)
        elif environ.get(ENV_TOKEN, "").strip():
            token = check_token(environ[ENV_TOKEN].strip())
        elif file_token_file:
            token_file = values["token_file"] = file_token_file
            token = read_token_file(file_token_file)
        else:
            token = None
        return cls(**values, token=token)


def settings_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(ServerSettings) if f.metadata.get("kind")]


def names() -> list[str]:
    return [f.name for f in settings_fields()]


def env_names(f: dataclasses.Field) -> tuple[str, ...]:
    """The variables that set ``f``, the first set one winning."""
    return (ENV_PREFIX + f.name.upper(), *f.metadata["env"])


# -- values -----------------------------------------------------------------------------------


def _check(f: dataclasses.Field, value: Any, where: str) -> Any:
    """``value`` (already of the setting's type) if allowed, else an error naming ``where``."""
    kind, minimum = f.metadata["kind"], f.metadata["minimum"]
    if value is None:
        if f.default is None:
            return None
        raise MlbridgeError(f"mlbridge: {where} must be given (default {f.default!r})")
    if kind in ("path", "str"):
        if not isinstance(value, str) or not value:
            raise MlbridgeError(f"mlbridge: {where} must be a non-empty {'path' if kind == 'path' else 'string'}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise MlbridgeError(f"mlbridge: {where}={value!r} must be true or false")
    elif kind in ("int", "port"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MlbridgeError(f"mlbridge: {where}={value!r} must be a whole number")
        if kind == "port" and not 0 <= value <= 65535:
            raise MlbridgeError(f"mlbridge: {where}={value} must be a port, 0 to 65535")
        if minimum is not None and value < minimum:
            raise MlbridgeError(f"mlbridge: {where}={value} must be at least {minimum:g}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise MlbridgeError(f"mlbridge: {where}={value!r} must be a number")
        if minimum is not None and value < minimum:
            raise MlbridgeError(f"mlbridge: {where}={value} must be at least {minimum:g}")
    elif kind == "level":
        if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
            raise MlbridgeError(f"mlbridge: {where}={value!r} must be one of {', '.join(LOG_LEVELS)}")
    elif kind == "choice":
        choices = f.metadata["choices"]
        if value not in choices:
            raise MlbridgeError(f"mlbridge: {where}={value!r} must be one of {', '.join(choices)}")
    return value


def _from_text(f: dataclasses.Field, text: str, where: str) -> Any:
    """A flag's or a variable's text as the setting's type, checked."""
    kind = f.metadata["kind"]
    text = text.strip()
    if kind in ("int", "port"):
        try:
            value: Any = int(text.replace("_", ""))
        except ValueError:
            raise MlbridgeError(f"mlbridge: {where}={text!r} must be a whole number") from None
    elif kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise MlbridgeError(f"mlbridge: {where}={text!r} must be a number") from None
    elif kind == "bool":
        if text.lower() in _TRUE:
            value = True
        elif text.lower() in _FALSE:
            value = False
        else:
            raise MlbridgeError(f"mlbridge: {where}={text!r} must be true or false")
    elif kind == "level":
        value = text.upper()
    elif kind == "choice":
        value = text.lower()
    else:
        value = text
    return _check(f, value, where)


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment sets."""
    found: dict[str, Any] = {}
    for f in settings_fields():
        for name in env_names(f):
            text = environ.get(name, "")
            if text.strip():
                found[f.name] = _from_text(f, text, name)
                break
    return found


def from_file(path: Path) -> dict[str, Any]:
    """The settings of the [serving] section of the settings file ``path``."""
    from .settings import read_file

    data, _mode = read_file(path)
    section = data.get("serving", {})
    by_name = {f.name: f for f in settings_fields()}
    found: dict[str, Any] = {}
    for key, value in section.items():
        f = by_name.get(key)
        if f is None:
            raise MlbridgeError(f"mlbridge: settings file {path}: key {key} in [serving] is unknown; "
                                f"known: {', '.join(by_name)}")
        where = f"settings file {path}: [serving] {key}"
        kind = f.metadata["kind"]
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind == "level" and isinstance(value, str):
            value = value.upper()
        value = _check(f, value, where)
        if kind == "path" and not os.path.isabs(value):
            value = str(path.resolve().parent / value)
        found[key] = value
    return found


# -- the command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting's flag. Unset flags stay None, so that the environment and the file can
    fill them in (ServerSettings.resolve)."""
    for f in settings_fields():
        if f.name in ("enable_batching",):
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        variables = ", ".join("$" + name for name in env_names(f))
        default = (f.metadata["shown"] or "none") if f.default is None else f.default
        parser.add_argument(
            flag, dest=f.name, default=None, metavar=_metavar(f),
            type=lambda text, f=f, flag=flag: _flag_value(f, text, flag),
            help=f"{f.metadata['help']} (default: {default}; {variables})".replace("%", "%%"),
        )
    f = next(f for f in settings_fields() if f.name == "enable_batching")
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument("--enable-batching", dest="enable_batching", action="store_const", const=True,
                          default=None, help=f"{f.metadata['help']} (the default; "
                          f"${env_names(f)[0]}=false turns it off)")
    batching.add_argument("--no-batching", dest="enable_batching", action="store_const", const=False,
                          help="run each Predict call on its own")


def _metavar(f: dataclasses.Field) -> str:
    kind = f.metadata["kind"]
    return {"path": "PATH", "port": "PORT", "int": "N", "float": "SECONDS" if "interval" in f.name or
            "grace" in f.name else "X", "choice": "{" + ",".join(f.metadata["choices"]) + "}",
            "level": "LEVEL"}.get(kind, "TEXT")


def _flag_value(f: dataclasses.Field, text: str, flag: str) -> Any:
    try:
        return _from_text(f, text, flag)
    except MlbridgeError as exc:  # argparse prints it as the flag's error, with the usage
        raise argparse.ArgumentTypeError(str(exc).removeprefix("mlbridge: ")) from None
