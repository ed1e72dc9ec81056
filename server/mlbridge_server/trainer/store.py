"""Model versions on disk (MODEL_BASE/NAME/N/) and in the catalog table `model_versions` (read through the view `models`).

A version is written under MODEL_BASE/NAME/.tmp-XXXX/ and renamed into place in one step, so a
model server polling the base (ours or TensorFlow Serving, which only loads numeric
directories) never sees half a SavedModel. Two trainers racing for the same number both try
the rename; the loser finds the directory taken and moves on to the next number.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import mysql.connector
from mysql.connector import errorcode

from mlbridge import db
from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from .columns import ModelRef

TMP_PREFIX = ".tmp-"


def disk_versions(model_dir: Path) -> list[int]:
    """The numeric version directories of a model, ascending."""
    if not model_dir.is_dir():
        return []
    found = []
    for entry in model_dir.iterdir():
        if entry.name.isdigit() and entry.is_dir():
            found.append(int(entry.name))
    return sorted(found)


def catalog_max_version(dsn: Dsn, name: str) -> int:
    conn = db.connect(dsn)
    try:
        cur = conn.cursor()
        try:
            cur.execute(db.query("max_model_version"), (name,))
        except mysql.connector.Error as exc:
            if exc.errno == errorcode.ER_NO_SUCH_TABLE:
                raise MlbridgeError(
                    f"mlbridge: database {dsn.database!r} has no model catalog: run `mlbridge db install` "
                    "first (or pass the --dsn of the mlbridge schema)"
                ) from exc
            raise
        (found,) = cur.fetchone()
        cur.close()
        return int(found or 0)
    finally:
        conn.close()


def next_version(model_dir: Path, catalog_max: int) -> int:
    return 1 + max([catalog_max, *disk_versions(model_dir)])


def staging_dir(model_dir: Path) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=model_dir))
    # mkdtemp makes the directory 0700; once renamed into place a model server running as
    # another user (TF Serving in a container, say) could not read the version.
    staged.chmod(0o755)
    return staged


def publish(staged: Path, model_dir: Path, version: int) -> tuple[int, Path]:
    """Rename the staged SavedModel to the first free version number from `version` on."""
    while True:
        target = model_dir / str(version)
        try:
            os.rename(staged, target)
            return version, target
        except OSError as exc:
            # A non-empty directory (ENOTEMPTY or EEXIST) or a file (ENOTDIR) holds the number.
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                version += 1
                continue
            raise


def discard(staged: Path | str) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def _json(value) -> str:
    """JSON the catalog's JSON_VALID check accepts: NaN and infinities become null."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


def record_version(
    dsn: Dsn,
    *,
    name: str,
    version: int,
    task: str,
    model_type: str | None = None,
    inputs: list[dict],
    outputs: list[dict],
    score_output: str,
    label: str,
    metrics: dict,
    trained_on: str,
    trained_by: str | None = None,
) -> None:
    conn = db.connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute(
            db.query("record_model_version"),
            (name, version, task, model_type, _json(inputs), _json(outputs), score_output, label, _json(metrics), trained_on,
             trained_by),
        )
        cur.close()
    finally:
        conn.close()


def label_version(dsn: Dsn, name: str, label: str) -> int:
    conn = db.connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute(db.query("model_label_version"), (name, label))
        row = cur.fetchone()
        cur.close()
    finally:
        conn.close()
    if row is None:
        raise MlbridgeError(f"mlbridge: model {name!r} has no version labelled {label!r}")
    return int(row[0])


def resolve(model_base: Path, ref: ModelRef, dsn: Dsn | None = None) -> tuple[int, Path]:
    """The version directory a reference names: the newest on disk, a given one, or a label's."""
    model_dir = Path(model_base) / ref.name
    versions = disk_versions(model_dir)
    if not versions:
        raise MlbridgeError(
            f"mlbridge: no versions of model {ref.name!r} under {model_base}: train it first "
            "or pass the right --model-base"
        )
    if ref.label is not None:
        if dsn is None:
            raise MlbridgeError(f"mlbridge: resolving {ref.name}@{ref.label} needs the database")
        version = label_version(dsn, ref.name, ref.label)
    else:
        version = ref.version or versions[-1]
    if version not in versions:
        raise MlbridgeError(
            f"mlbridge: model {ref.name!r} has no version {version} under {model_base} "
            f"(it has {', '.join(map(str, versions))})"
        )
    return version, model_dir / str(version)
