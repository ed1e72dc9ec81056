"""The settings file: database settings kept off the command line, where `ps` shows them to
every user of the machine.

MLBRIDGE_SETTINGS (or `mlbridge --settings PATH`) names a TOML file with up to two sections,
[database] here and [serving], the model server's (mlbridge.serving_settings):

    [database]
    dsn = "mysql://bridge@db.example:3306/mlbridge"
    password = "..."
    ssl_ca = "/etc/mlbridge/ca.pem"
    ssl_verify_identity = true

Each value fills in what the DSN in use leaves out (the flag's or MLBRIDGE_DSN's DSN, else
`dsn` here); the keys besides dsn and password are the DSN's options (config.OPTIONS). A file
that holds a password must be readable and writable by its owner alone (chmod 600), as ssh and
libpq require of theirs: otherwise any user of the machine could read it.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from .config import OPTIONS, Dsn, check_option
from .errors import MlbridgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KEYS = ("dsn", "password", *OPTIONS)


def settings_path() -> Path | None:
    text = os.environ.get("MLBRIDGE_SETTINGS")
    return Path(text) if text else None


SECTIONS = ("database", "serving")


def read_file(path: Path) -> tuple[dict, int]:
    """The settings file's tables, checked for unknown sections, and its mode (for the password
    check). The [serving] section belongs to the model server (mlbridge.serving_settings)."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = tomllib.load(f)
    except FileNotFoundError:
        raise MlbridgeError(f"mlbridge: settings file {path} does not exist: fix MLBRIDGE_SETTINGS or --settings") from None
    except OSError as exc:
        raise MlbridgeError(f"mlbridge: settings file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MlbridgeError(f"mlbridge: settings file {path} is not valid TOML: {exc}") from None
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise MlbridgeError(f"mlbridge: settings file {path}: section {unknown[0]!r} is unknown; known: "
                            + ", ".join(f"[{k}]" for k in SECTIONS))
    for name in SECTIONS:
        if not isinstance(data.get(name, {}), dict):
            raise MlbridgeError(f"mlbridge: settings file {path}: `{name}` must be a section, [{name}]")
    return data, mode


def database_settings(path: Path | None = None) -> dict[str, str]:
    """The [database] section of the settings file (none: {}), checked; values as strings."""
    path = path or settings_path()
    if path is None:
        return {}
    data, mode = read_file(path)
    section = data.get("database", {})
    found: dict[str, str] = {}
    for key, value in section.items():
        if key not in KEYS:
            raise MlbridgeError(f"mlbridge: settings file {path}: key {key} in [database] is unknown; "
                                f"known: {', '.join(KEYS)}")
        if key in ("dsn", "password"):
            if not isinstance(value, str):
                raise MlbridgeError(f"mlbridge: settings file {path}: {key} must be a string")
            found[key] = value
        else:
            try:
                found[key] = check_option(key, value)
            except MlbridgeError as exc:
                raise MlbridgeError(f"mlbridge: settings file {path}: {str(exc).removeprefix('mlbridge: ')}") from None
    if "dsn" in found:
        try:
            has_password = bool(Dsn.parse(found["dsn"]).password)
        except MlbridgeError as exc:
            raise MlbridgeError(f"mlbridge: settings file {path}: {str(exc).removeprefix('mlbridge: ')}") from None
    else:
        has_password = False
    if (found.get("password") or has_password) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MlbridgeError(
            f"mlbridge: settings file {path} holds a password but others may read it (mode "
            f"{stat.S_IMODE(mode):04o}): make it its owner's alone with `chmod 600 {path}`"
        )
    return found
