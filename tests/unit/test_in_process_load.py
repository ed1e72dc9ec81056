"""in_process.InProcessModels.load gives up on a load that hangs after its timeout, and hands a
failed load's own error back. (The loading itself, TensorFlow and all, is tested against real
servers in tests/server: test_model_processes.py runs a load that hangs on a FIFO.)"""

from __future__ import annotations

import threading
import time

import pytest

from mlbridge_server.serving import in_process


def test_a_load_that_hangs_is_given_up_after_the_timeout(monkeypatch, caplog):
    release = threading.Event()
    monkeypatch.setattr(in_process, "_load", lambda *_: release.wait(30) and "loaded late")
    models = in_process.InProcessModels(load_timeout=0.3)
    monkeypatch.setattr(models, "start", lambda: None)  # no TensorFlow here
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"loading took more than 0.3 s"):
        models.load("stuck", 1, "/nowhere")
    assert time.monotonic() - started < 5
    assert "model stuck version 1: giving up on its load after 0.3 s" in caplog.text
    release.set()


def test_a_failed_load_raises_its_own_error(monkeypatch):
    def fail(*_):
        raise ValueError("no saved_model.pb in /nowhere")

    monkeypatch.setattr(in_process, "_load", fail)
    models = in_process.InProcessModels(load_timeout=5)
    monkeypatch.setattr(models, "start", lambda: None)
    with pytest.raises(ValueError, match="no saved_model.pb"):
        models.load("broken", 1, "/nowhere")
