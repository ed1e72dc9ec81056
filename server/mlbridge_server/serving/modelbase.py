"""The model base on disk, laid out as TF Serving's: BASE/NAME/VERSION/.

A version is a folder whose name is all digits and that holds saved_model.pb
(or saved_model.pbtxt). Everything else is ignored: files, hidden folders,
the `.tmp-*` folders a trainer writes before renaming them into place, and a
digits folder still being copied (tf.saved_model.save writes saved_model.pb
after the variables, so a version appears once it is complete).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class VersionDir:
    name: str
    version: int
    path: str


def is_model_name(name: str) -> bool:
    """Whether ``name`` can be a model folder: one plain path component.

    Request names reach the file system (a version is looked up on disk when
    a request names one the last scan did not see), so nothing that could
    leave the model base passes."""
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and name == name.strip()
    )


def saved_model_file(path: str) -> str | None:
    for filename in SAVED_MODEL_FILES:
        candidate = os.path.join(path, filename)
        if os.path.isfile(candidate):
            return candidate
    return None


def _versions(base: str, name: str) -> dict[int, VersionDir]:
    return versions_at(os.path.join(base, name), name)


def versions_at(model_dir: str, name: str) -> dict[int, VersionDir]:
    """The complete versions in ``model_dir`` (a model's folder, wherever it
    is: a model config can place it outside the model base)."""
    versions: dict[int, VersionDir] = {}
    try:
        entries = sorted(os.scandir(model_dir), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return versions
    for entry in entries:
        if not entry.name.isdigit() or not entry.name.isascii():
            continue
        if not entry.is_dir() or saved_model_file(entry.path) is None:
            continue
        version = int(entry.name)
        # "7" and "007" name the same version: the first in sorted order wins.
        versions.setdefault(version, VersionDir(name, version, entry.path))
    return versions


def scan(base: str) -> dict[str, dict[int, VersionDir]]:
    """Every model in ``base`` with its versions; models without a complete
    version are left out. A missing base reads as empty."""
    models: dict[str, dict[int, VersionDir]] = {}
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return models
    for entry in entries:
        if not is_model_name(entry.name) or not entry.is_dir():
            continue
        versions = _versions(base, entry.name)
        if versions:
            models[entry.name] = versions
    return models


def find_version(base: str, name: str, version: int) -> VersionDir | None:
    """One version, looked up directly (it may have appeared since the last scan)."""
    if not is_model_name(name) or version < 0:
        return None
    return _versions(base, name).get(version)


def fingerprint(path: str) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file under a version folder: a
    version that failed to load is tried again once this changes."""
    items = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for filename in sorted(files):
            full = os.path.join(root, filename)
            try:
                st = os.stat(full)
            except OSError:
                continue
            items.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(items)
