"""Bad input over the Open Inference Protocol never hurts the model server: garbage bytes and
fuzzed v2 tensors (typed and raw) each get an error, never INTERNAL, and the server still answers
a good ModelInfer after each. The server runs with small caps (MLBRIDGE_SERVING_MAX_REQUEST_*)."""

from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlbridge import v2_tensors
from mlbridge.wire import open_inference_pb2 as pb
from mlbridge.wire import open_inference_service_pb2_grpc

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
X = np.array([0.0, 1.0, -2.5], np.float32)
_SIGNATURES = {"churn": {"x": "FP32", "y": "FP32"}, "text": {"text": "BYTES", "n": "INT32"}}


@pytest.fixture(scope="module")
def server(bad_input_server):
    """The server shared with test_bad_input (conftest.py)."""
    return bad_input_server


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return open_inference_service_pb2_grpc.GRPCInferenceServiceStub(channel)


def still_serving(server, stub) -> None:
    assert server.proc.poll() is None, server.output()[-4000:]
    request = pb.ModelInferRequest(model_name="churn")
    for name in ("x", "y"):
        datatype, shape, raw = v2_tensors.encode_raw(X)
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    response = stub.ModelInfer(request, timeout=30)
    assert [o.name for o in response.outputs] == ["label", "score"]
    assert list(response.outputs[1].shape) == [3]


def test_garbage_bytes(server, stub, channel):
    raw = channel.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=None)
    for garbage in (b"\xff" * 64, b"\x2a\xff\xff\xff\xff\x0f", b"\x3a\x05abc", random.Random(8).randbytes(4096)):
        with pytest.raises(grpc.RpcError) as info:
            raw(garbage, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert "is not a valid" in info.value.details()
        still_serving(server, stub)
    with pytest.raises(grpc.RpcError) as info:  # parses, names no model
        raw(b"", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model_name is required" in info.value.details()
    still_serving(server, stub)


_DATATYPES = st.sampled_from(list(v2_tensors.DATATYPES) + ["", "FP8", "fp32", "STRING"])
_SIZES = st.integers(0, 5) | st.integers(-(2**63), 2**63 - 1)
_FIELDS = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=12),
}


@st.composite
def v2_tensor(draw, name: str, datatype: str, raw: bool):
    """Mostly the datatype and a small shape the signature takes, so most reach the decoder;
    returns the tensor and its raw contents (None when typed)."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype if draw(st.sampled_from([True] * 4 + [False])) else draw(_DATATYPES))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=1) | st.lists(_SIZES, max_size=4))
    tensor.shape.extend(shape)
    count = int(np.prod(shape)) if shape and all(0 <= d <= 4 for d in shape) else 1
    n = draw(st.just(count) | st.integers(0, 6))
    if raw:
        if tensor.datatype == "BYTES" and draw(st.booleans()):
            return tensor, v2_tensors.pack_bytes(draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n)))
        return tensor, draw(st.binary(min_size=4 * n, max_size=4 * n) | st.binary(max_size=40))
    fields = draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=2))
    if draw(st.booleans()):
        fields.append({"FP32": "fp32_contents", "BYTES": "bytes_contents"}.get(datatype, "int_contents"))
    for field in fields:
        size = n if draw(st.booleans()) else draw(st.integers(0, 6))
        getattr(tensor.contents, field).extend(draw(st.lists(_FIELDS[field], min_size=size, max_size=size)))
    return tensor, None


# The same examples on every run (derandomize), and no example database written.
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(_SIGNATURES)), data=st.data())
def test_fuzzed_v2_tensors_get_an_answer_never_an_internal_error(server, stub, model, data):
    raw = data.draw(st.booleans(), label="raw")
    request = pb.ModelInferRequest(model_name=model)
    for name, datatype in _SIGNATURES[model].items():
        tensor, contents = data.draw(v2_tensor(name, datatype, raw), label=name)
        request.inputs.append(tensor)
        if contents is not None:
            request.raw_input_contents.append(contents)
    if data.draw(st.sampled_from([False] * 9 + [True]), label="one raw entry too few"):
        del request.raw_input_contents[:1]
    try:
        stub.ModelInfer(request, timeout=30)
        event("answered")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details(), request)
        event(e.details()[:120])
    still_serving(server, stub)
