"""Choosing the bridge's protocol (mlbridge.serving_protocols) and the v2 client's version
mapping (mlbridge.v2_client): pure logic, no server."""

from __future__ import annotations

import pytest

from mlbridge.errors import MlbridgeError
from mlbridge.serving_client import ModelServerClient
from mlbridge.serving_protocols import open_client, resolve_protocol
from mlbridge.v2_client import UNVERSIONED, InferenceClient, _version_number, _wire_version


def test_default_is_tfserving():
    assert resolve_protocol(None, {}) == "tfserving"
    assert resolve_protocol(None, {"MLBRIDGE_SERVER_PROTOCOL": "  "}) == "tfserving"


def test_flag_wins_over_environment():
    assert resolve_protocol("tfserving", {"MLBRIDGE_SERVER_PROTOCOL": "v2"}) == "tfserving"
    assert resolve_protocol(None, {"MLBRIDGE_SERVER_PROTOCOL": "V2"}) == "v2"


@pytest.mark.parametrize(("flag", "env", "named"), [
    ("kserve", {}, "--protocol='kserve'"),
    (None, {"MLBRIDGE_SERVER_PROTOCOL": "grpc"}, "$MLBRIDGE_SERVER_PROTOCOL='grpc'"),
])
def test_unknown_protocols_are_refused_by_name(flag, env, named):
    with pytest.raises(MlbridgeError, match="use tfserving .* or v2") as caught:
        resolve_protocol(flag, env)
    assert named in str(caught.value)


def test_open_client_picks_the_class():
    with open_client("v2", "127.0.0.1:1") as v2, open_client("tfserving", "127.0.0.1:1") as tf:
        assert isinstance(v2, InferenceClient)
        assert isinstance(tf, ModelServerClient)
    with pytest.raises(MlbridgeError, match="unknown protocol"):
        open_client("rest", "127.0.0.1:1")


def test_versions_on_the_wire():
    assert _wire_version(None) == ""
    assert _wire_version(UNVERSIONED) == ""
    assert _wire_version(7) == "7"
    assert _version_number("") == UNVERSIONED
    assert _version_number(" 12 ") == 12
    assert _version_number("v1") is None
