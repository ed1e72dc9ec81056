"""Version numbers and the atomic publish of a SavedModel directory."""

import json
import stat

import pytest

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer import store
from mlbridge_server.trainer.columns import ModelRef


def test_next_version_passes_disk_and_catalog(tmp_path):
    model_dir = tmp_path / "m"
    assert store.next_version(model_dir, 0) == 1
    for name in ("1", "3", ".tmp-x", "notes", "10.bak"):
        (model_dir / name).mkdir(parents=True)
    (model_dir / "12").write_text("a file is not a version")
    assert store.next_version(model_dir, 0) == 4
    assert store.next_version(model_dir, 7) == 8


def test_publish_renames_into_the_first_free_number(tmp_path):
    model_dir = tmp_path / "m"
    staged = store.staging_dir(model_dir)
    assert staged.name.startswith(".tmp-")
    assert stat.S_IMODE(staged.stat().st_mode) == 0o755  # readable by a server running as another user
    (staged / "saved_model.pb").write_bytes(b"x")
    taken = model_dir / "2"
    taken.mkdir()
    (taken / "saved_model.pb").write_bytes(b"other trainer")
    version, path = store.publish(staged, model_dir, 2)
    assert (version, path) == (3, model_dir / "3")
    assert (path / "saved_model.pb").read_bytes() == b"x"
    assert (taken / "saved_model.pb").read_bytes() == b"other trainer"
    assert not staged.exists()


def test_resolve_newest_and_given_versions(tmp_path):
    for v in ("1", "2", "10"):
        (tmp_path / "m" / v).mkdir(parents=True)
    assert store.resolve(tmp_path, ModelRef("m")) == (10, tmp_path / "m" / "10")
    assert store.resolve(tmp_path, ModelRef("m", version=2)) == (2, tmp_path / "m" / "2")
    with pytest.raises(MlbridgeError, match="no version 5.*1, 2, 10"):
        store.resolve(tmp_path, ModelRef("m", version=5))
    with pytest.raises(MlbridgeError, match="no versions of model 'other'"):
        store.resolve(tmp_path, ModelRef("other"))


def test_catalog_json_has_no_nan():
    text = store._json({"auc": float("nan"), "accuracy": 0.5, "rows": [float("inf")]})
    assert json.loads(text) == {"auc": None, "accuracy": 0.5, "rows": [None]}
