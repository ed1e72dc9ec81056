"""The model registry and the model base scan, with a fake loader (no
TensorFlow): version policy, on-demand older versions, failures, removal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from mlbridge.wire import get_model_metadata_pb2
from mlbridge_server.serving import modelbase
from mlbridge_server.serving.errors import RequestError
from mlbridge_server.serving.registry import ModelRegistry


class FakeServable:
    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
        self.signature_defs = get_model_metadata_pb2.SignatureDefMap()


class FakeLoader:
    """Loads any folder unless it holds a file named BROKEN; counts loads."""

    def __init__(self, delay: float = 0.0):
        self.loads: list[tuple[str, int]] = []
        self.delay = delay

    def __call__(self, name, version, path):
        time.sleep(self.delay)
        self.loads.append((name, version))
        if (Path(path) / "BROKEN").exists():
            raise ValueError("cannot parse saved_model.pb\nmore detail")
        return FakeServable(name, version, path)


def add_version(base: Path, name: str, version: int | str, broken: bool = False) -> Path:
    path = base / name / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    if broken:
        (path / "BROKEN").write_text("x")
    return path


def registry(base: Path, loader=None, keep_older: int = 2) -> ModelRegistry:
    return ModelRegistry(
        str(base),
        keep_older=keep_older,
        loader=loader or FakeLoader(),
        signature_reader=lambda path: get_model_metadata_pb2.SignatureDefMap(),
    )


def states(reg: ModelRegistry, name: str = "") -> dict[tuple[str, int], str]:
    return {(s.name, s.version): s.state + ("*" if s.latest else "") for s in reg.statuses(name)}


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(RequestError) as info:
        call()
    return info.value.code


def test_scan_ignores_everything_but_complete_version_folders(tmp_path):
    add_version(tmp_path, "m", 1)
    add_version(tmp_path, "m", 10)
    add_version(tmp_path, "m", ".tmp-11")
    add_version(tmp_path, "m", "latest")
    (tmp_path / "m" / "12").mkdir()  # no saved_model.pb yet: still being written
    (tmp_path / "m" / "13").write_text("a file")
    add_version(tmp_path, ".hidden", 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "README").write_text("x")
    found = modelbase.scan(str(tmp_path))
    assert {name: sorted(v) for name, v in found.items()} == {"m": [1, 10]}
    assert modelbase.scan(str(tmp_path / "missing")) == {}
    assert modelbase.find_version(str(tmp_path), "m", 10).path.endswith("/m/10")
    assert modelbase.find_version(str(tmp_path), "../" + tmp_path.name + "/m", 1) is None


def test_newest_version_loads_eagerly_older_on_demand(tmp_path):
    for v in (1, 2, 3):
        add_version(tmp_path, "m", v)
    loader = FakeLoader()
    reg = registry(tmp_path, loader)
    reg.scan()
    assert loader.loads == [("m", 3)]
    assert states(reg) == {("m", 1): "UNLOADED", ("m", 2): "UNLOADED", ("m", 3): "AVAILABLE*"}
    assert reg.resolve("m", None).version == 3
    assert reg.resolve("m", 1).version == 1
    assert reg.resolve("m", 1).version == 1
    assert loader.loads == [("m", 3), ("m", 1)]
    assert states(reg)[("m", 1)] == "AVAILABLE"


def test_older_versions_are_kept_least_recently_used_first(tmp_path):
    for v in (1, 2, 3, 4):
        add_version(tmp_path, "m", v)
    loader = FakeLoader()
    reg = registry(tmp_path, loader, keep_older=2)
    reg.scan()
    reg.resolve("m", 1)
    reg.resolve("m", 2)
    reg.resolve("m", 1)  # 2 is now the least recently used
    reg.resolve("m", 3)
    assert states(reg) == {
        ("m", 1): "AVAILABLE", ("m", 2): "UNLOADED", ("m", 3): "AVAILABLE", ("m", 4): "AVAILABLE*",
    }


def test_new_version_swaps_in_and_the_old_one_stays_for_pinned_requests(tmp_path):
    add_version(tmp_path, "m", 1)
    loader = FakeLoader()
    reg = registry(tmp_path, loader)
    reg.scan()
    before = reg.resolve("m", None)
    add_version(tmp_path, "m", 2)
    reg.scan()
    assert reg.resolve("m", None).version == 2
    assert reg.resolve("m", 1) is before  # not loaded again
    assert loader.loads == [("m", 1), ("m", 2)]


def test_version_written_after_the_last_scan_is_found(tmp_path):
    add_version(tmp_path, "m", 1)
    reg = registry(tmp_path)
    reg.scan()
    add_version(tmp_path, "m", 2)
    add_version(tmp_path, "n", 5)
    assert reg.resolve("m", 2).version == 2
    assert reg.resolve("n", 5).version == 5


def test_broken_newest_version_fails_alone_and_is_retried_when_its_files_change(tmp_path):
    add_version(tmp_path, "m", 1)
    broken = add_version(tmp_path, "m", 2, broken=True)
    loader = FakeLoader()
    reg = registry(tmp_path, loader)
    reg.scan()
    status = {s.version: s for s in reg.statuses()}
    assert status[2].state == "FAILED" and status[2].error == "cannot parse saved_model.pb"
    assert status[1].state == "AVAILABLE" and status[1].latest
    assert reg.resolve("m", None).version == 1
    assert code_of(lambda: reg.resolve("m", 2)) == grpc.StatusCode.FAILED_PRECONDITION

    reg.scan()
    assert loader.loads.count(("m", 2)) == 1  # not retried while unchanged

    (broken / "BROKEN").unlink()
    reg.scan()
    assert reg.resolve("m", None).version == 2
    assert states(reg)[("m", 2)] == "AVAILABLE*"


def test_model_whose_only_version_fails(tmp_path):
    add_version(tmp_path, "m", 1, broken=True)
    reg = registry(tmp_path)
    reg.scan()
    with pytest.raises(RequestError) as info:
        reg.resolve("m", None)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "version 1 failed" in info.value.message


def test_removed_versions_and_models_are_unloaded(tmp_path):
    import shutil

    add_version(tmp_path, "m", 1)
    add_version(tmp_path, "m", 2)
    add_version(tmp_path, "gone", 1)
    reg = registry(tmp_path)
    reg.scan()
    reg.resolve("m", 1)
    shutil.rmtree(tmp_path / "m" / "2")
    shutil.rmtree(tmp_path / "gone")
    reg.scan()
    assert states(reg) == {("m", 1): "AVAILABLE*"}
    assert code_of(lambda: reg.resolve("gone", None)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: reg.resolve("m", 2)) == grpc.StatusCode.NOT_FOUND


def test_unknown_names_and_versions(tmp_path):
    add_version(tmp_path, "m", 1)
    reg = registry(tmp_path)
    assert code_of(lambda: reg.resolve("m", None)) == grpc.StatusCode.UNAVAILABLE  # first scan not done
    reg.scan()
    for name in ("..", "../m", ".m", "m/1", "/m", "x"):
        assert code_of(lambda name=name: reg.resolve(name, None)) == grpc.StatusCode.NOT_FOUND
        assert code_of(lambda name=name: reg.resolve(name, 1)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: reg.resolve("", None)) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(RequestError) as info:
        reg.resolve("m", 4)
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "versions: 1" in info.value.message


def test_concurrent_requests_load_a_version_once(tmp_path):
    add_version(tmp_path, "m", 1)
    add_version(tmp_path, "m", 2)
    loader = FakeLoader(delay=0.05)
    reg = registry(tmp_path, loader)
    reg.scan()
    got = []
    threads = [threading.Thread(target=lambda: got.append(reg.resolve("m", 1))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len({id(s) for s in got}) == 1
    assert loader.loads.count(("m", 1)) == 1


def test_requests_keep_the_old_version_while_the_new_one_loads(tmp_path):
    add_version(tmp_path, "m", 1)
    loader = FakeLoader()
    reg = registry(tmp_path, loader)
    reg.scan()
    add_version(tmp_path, "m", 2)
    loader.delay = 0.3
    scanning = threading.Thread(target=reg.scan)
    scanning.start()
    time.sleep(0.1)
    assert reg.resolve("m", None).version == 1
    assert states(reg)[("m", 2)] == "LOADING"
    scanning.join()
    assert reg.resolve("m", None).version == 2


def test_polling_thread_picks_up_changes(tmp_path):
    add_version(tmp_path, "m", 1)
    reg = registry(tmp_path)
    reg.scan()
    reg.start(0.05)
    try:
        add_version(tmp_path, "m", 2)
        deadline = time.monotonic() + 5
        while reg.resolve("m", None).version != 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        reg.stop()
