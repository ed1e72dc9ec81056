"""Choosing the bridge's protocol (mlbridge.serving_protocols) and the v2 client's version
mapping (mlbridge.v2_client): pure logic, no server."""

from __future__ import annotations

import numpy as np
import pytest

from mlbridge import v2_tensors
from mlbridge.errors import MlbridgeError
from mlbridge.serving_client import InvalidRequest, ModelServerClient
from mlbridge.serving_protocols import open_client, resolve_protocol
from mlbridge.v2_client import UNVERSIONED, InferenceClient, _version_number, _wire_version
from mlbridge.wire import open_inference_pb2 as pb


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


class _Recorder(InferenceClient):
    """The v2 client with its RPCs answered here: what predict sends, without a server."""

    def __init__(self, metadata: pb.ModelMetadataResponse):
        super().__init__("127.0.0.1:1")
        self.sent: list = []
        self._answer_metadata = metadata

    def _rpc(self, method, request, timeout):
        self.sent.append((method, request))
        if method == "ModelMetadata":
            return self._answer_metadata
        response = pb.ModelInferResponse(model_name=request.model_name, model_version="4")
        datatype, shape, raw = v2_tensors.encode_raw(np.array([0.25, 0.75], np.float32))
        response.outputs.add(name="score", datatype=datatype, shape=shape)
        response.raw_output_contents.append(raw)
        return response


def test_predict_sends_raw_contents_and_reshapes_column_inputs():
    meta = pb.ModelMetadataResponse(name="m", versions=["4"])
    meta.inputs.add(name="a", datatype="FP64", shape=[-1, 1])
    meta.inputs.add(name="b", datatype="BYTES", shape=[-1])
    with _Recorder(meta) as client:
        signature = client.metadata("m")
        assert signature.version == 4
        assert [(s.name, s.dtype, s.shape) for s in signature.inputs] == [
            ("a", "float64", (None, 1)), ("b", "string", (None,))]
        out = client.predict("m", 4, {"a": np.array([1.0, 2.0]), "b": np.array(["x", "yz"], dtype=object)},
                             signature="other")
        method, request = client.sent[-1]
    assert method == "ModelInfer"
    assert (request.model_name, request.model_version) == ("m", "4")
    assert request.parameters["signature_name"].string_param == "other"
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [("a", "FP64", [2, 1]), ("b", "BYTES", [2])]
    assert request.raw_input_contents[1] == v2_tensors.pack_bytes([b"x", b"yz"])
    assert not any(t.HasField("contents") for t in request.inputs)
    np.testing.assert_array_equal(out["score"], np.array([0.25, 0.75], np.float32))


def test_predict_refuses_an_input_it_cannot_encode_before_sending():
    with _Recorder(pb.ModelMetadataResponse()) as client, pytest.raises(InvalidRequest, match='input "c"'):
        client.predict("m", None, {"c": np.array([1 + 2j])})
    assert client.sent == []
