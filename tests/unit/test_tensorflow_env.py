"""serving/tensorflow_env.py: the server turns oneDNN off unless its environment says otherwise.
(That this keeps an in-process server's memory flat over load and unload cycles, and that the
load's log line says so, is tested against a real server: tests/server/test_memory.py.)"""

from __future__ import annotations

import pytest

from mlbridge_server.serving.tensorflow_env import ONEDNN, onednn, prepare


def test_onednn_is_turned_off_when_the_environment_does_not_say():
    env: dict[str, str] = {}
    prepare(env)
    assert env == {ONEDNN: "0"} and not onednn(env)


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("0", False), ("False", False)])
def test_the_environments_own_setting_stays(value, on):
    env = {ONEDNN: value}
    prepare(env)
    assert env == {ONEDNN: value} and onednn(env) is on


def test_tensorflows_default_is_on():
    assert onednn({}) is True
