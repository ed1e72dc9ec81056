"""Bad input never hurts the model server: garbage, oversized, absurd and
mistyped requests, and fuzzed TensorProtos, each get an error (never INTERNAL
from our code) and the server still answers a good Predict after each.

The server runs with small caps (MLBRIDGE_SERVING_MAX_REQUEST_*), which also
shows the environment reaches it."""

from __future__ import annotations

import os
import random
import time

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlbridge.serving_constants import MAX_MESSAGE_BYTES  # the server's gRPC limit
from mlbridge.tensors import shape_proto, to_tensor_proto
from mlbridge.wire import predict_pb2, prediction_service_pb2_grpc, tensor_pb2, types_pb2
from mlbridge_server.serving.limits import MAX_BYTES_ENV, MAX_ELEMENTS_ENV

from .conftest import BAD_INPUT_MAX_BYTES, BAD_INPUT_MAX_ELEMENTS

T = types_pb2
PREDICT = "/tensorflow.serving.PredictionService/Predict"
MAX_ELEMENTS = BAD_INPUT_MAX_ELEMENTS
MAX_BYTES = BAD_INPUT_MAX_BYTES
X = np.array([0.0, 1.0, -2.5], np.float32)


@pytest.fixture(scope="module")
def server(bad_input_server):
    """The server shared with test_v2_bad_input (conftest.py), capped at MAX_ELEMENTS and MAX_BYTES."""
    return bad_input_server


@pytest.fixture(scope="module")
def channel(server):
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(server.target, options=options) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(model: str, inputs: dict, version: int | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else to_tensor_proto(value)
        request.inputs[key].CopyFrom(proto)
    return request


def _declared(shape, dtype=T.DT_FLOAT, **values) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape_proto(tuple(shape)), **values)


def still_serving(server, stub) -> None:
    assert server.proc.poll() is None, server.output()[-4000:]
    response = stub.Predict(_request("churn", {"x": X, "y": X}), timeout=30)
    assert list(response.outputs["score"].tensor_shape.dim[0:1])[0].size == len(X)


def _error(stub, request, timeout: float = 30) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=timeout)
    return info.value


def _invalid(server, stub, request, *fragments: str) -> str:
    started = time.monotonic()
    error = _error(stub, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    for fragment in fragments:
        assert fragment in error.details(), error.details()
    assert time.monotonic() - started < 5, "a refused request must be cheap"
    still_serving(server, stub)
    return error.details()


def test_garbage_bytes(server, stub, channel):
    raw = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
    for garbage in (b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05abc", random.Random(8).randbytes(4096)):
        with pytest.raises(grpc.RpcError) as info:
            raw(garbage, timeout=30)
        # parsed by the server's DecodeInterceptor, not by gRPC (which would answer INTERNAL)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert "is not a valid" in info.value.details()
        still_serving(server, stub)
    # a message that parses but names no model
    with pytest.raises(grpc.RpcError) as info:
        raw(b"", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    still_serving(server, stub)


def test_a_request_over_the_max_message_size(server, channel, stub):
    raw = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\0" * (MAX_MESSAGE_BYTES + 1), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_serving(server, stub)


def test_a_declared_shape_without_values(server, stub):
    # 63 bytes that used to be zero-filled into 12 million floats and scored
    request = _request("churn", {"x": _declared([12_000_000]), "y": _declared([12_000_000])})
    assert request.ByteSize() < 100
    _invalid(server, stub, request, 'input "x"', f"cap of {MAX_ELEMENTS} elements", MAX_ELEMENTS_ENV)
    # under the caps it is the values that are missing
    request = _request("churn", {"x": _declared([5000]), "y": X})
    _invalid(server, stub, request, 'input "x"', "[5000] has 5000 elements", "float_val")
    request = _request("churn", {"x": _declared([5], float_val=[1, 2]), "y": X})
    _invalid(server, stub, request, 'input "x"', "float_val holds 2 values")


def test_one_value_still_fills_a_tensor(server, stub):
    request = _request("churn", {"x": _declared([3], float_val=[0.5]), "y": X})
    response = stub.Predict(request, timeout=30)
    assert response.outputs["score"].tensor_shape.dim[0].size == 3


def test_the_caps_are_per_request(server, stub):
    half = np.zeros(MAX_ELEMENTS // 2 + 1, np.float32)
    _invalid(server, stub, _request("churn", {"x": half, "y": half}), 'input "y"', MAX_ELEMENTS_ENV)
    text = _declared([1000], T.DT_STRING, string_val=[b"z" * 10_000])
    request = _request("text", {"text": text, "n": np.zeros(1000, np.int32)})
    _invalid(server, stub, request, 'input "text"', f"cap of {MAX_BYTES} bytes", MAX_BYTES_ENV)


@pytest.mark.parametrize(
    "shape,fragment",
    [
        ([-1], "fully known shape"),
        ([-(2**62)], "fully known shape"),
        ([2**62, 2**62], "multiply to more than 2**48"),
        ([2**40, 2**40, 2**40, 0], "multiply to more than 2**48"),  # zero elements, yet no allocatable shape
        ([0, 1_089_924_710, 2_115_598_434], "multiply to more than 2**48"),  # the fuzz found this one
        ([2**20, 2**20], "cap of"),  # a tensor that could be, over the request cap
        ([2**20, 0], "has 0"),  # zero elements, one value
        ([1] * 65, "at most 64 dimensions"),
    ],
)
def test_negative_and_absurd_dimensions(server, stub, shape, fragment):
    request = _request("churn", {"x": _declared(shape, float_val=[1.0]), "y": X})
    _invalid(server, stub, request, 'input "x"', fragment)


def test_mismatched_dtypes(server, stub):
    _invalid(server, stub, _request("churn", {"x": X.astype(np.float64), "y": X}),
             'input "x" must be float32, got float64')
    _invalid(server, stub, _request("churn", {"x": np.array([b"1.5"], dtype=object), "y": X}),
             'input "x" must be float32, got string')
    _invalid(server, stub, _request("text", {"text": X, "n": np.zeros(3, np.int32)}),
             'input "text" must be string, got float32')
    # the right dtype with its values in another type's field
    _invalid(server, stub, _request("churn", {"x": _declared([2], int_val=[1, 2]), "y": X}),
             'input "x"', "int_val cannot carry float32")


def test_nested_nonsense(server, stub):
    odd = _declared([3], float_val=[1, 2, 3])
    odd.tensor_shape.unknown_rank = True
    _invalid(server, stub, _request("churn", {"x": odd, "y": X}), "known shape")
    # variant_val (field 15, which our wire module leaves out) of nested junk
    nested = b"\x0a\x03abc\x12\x04\x08\x4d\x10\x01" + os.urandom(64)
    wire = _declared([3], T.DT_VARIANT).SerializeToString() + b"\x7a" + bytes([len(nested)]) + nested
    junk = tensor_pb2.TensorProto.FromString(wire)
    _invalid(server, stub, _request("churn", {"x": junk, "y": X}), 'input "x" must be float32')
    junk.dtype = T.DT_FLOAT
    _invalid(server, stub, _request("churn", {"x": junk, "y": X}), 'input "x"', "no float32 values")
    named = _declared([3], float_val=[1, 2, 3])
    named.tensor_shape.dim[0].name = "n" * 100_000
    response = stub.Predict(_request("churn", {"x": named, "y": X}), timeout=30)
    assert response.outputs["score"].tensor_shape.dim[0].size == 3
    for dtype in (T.DT_RESOURCE, T.DT_BFLOAT16, 9999):
        _invalid(server, stub, _request("churn", {"x": _declared([1], dtype), "y": X}), 'input "x"')
    content = _declared([2], tensor_content=b"\1" * 7)
    _invalid(server, stub, _request("churn", {"x": content, "y": X}), "tensor_content holds 7 bytes")
    _invalid(server, stub, _request("churn", {"x": X, "y": X, "z" * 10_000: X}), "unknown input")
    _invalid(server, stub, _request("churn", {}), "missing input")


@pytest.mark.parametrize("version", [-1, 0, 3, 2**62])
def test_unknown_model_or_version_is_not_found(server, stub, version):
    error = _error(stub, _request("churn", {"x": X, "y": X}, version))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "churn" in error.details()
    error = _error(stub, _request("nope", {"x": X}, version))
    assert error.code() == grpc.StatusCode.NOT_FOUND and '"nope"' in error.details()
    still_serving(server, stub)


_DTYPES = st.sampled_from(
    [T.DT_FLOAT, T.DT_FLOAT, T.DT_FLOAT, T.DT_DOUBLE, T.DT_INT32, T.DT_INT64, T.DT_STRING,
     T.DT_HALF, T.DT_BOOL, T.DT_COMPLEX64, T.DT_BFLOAT16, T.DT_VARIANT]
) | st.integers(min_value=0, max_value=200)
_SIZES = st.integers(min_value=0, max_value=6) | st.integers(min_value=-(2**63), max_value=2**63 - 1)


_SIGNATURES = {"churn": {"x": T.DT_FLOAT, "y": T.DT_FLOAT}, "text": {"text": T.DT_STRING, "n": T.DT_INT32}}


@st.composite
def tensor_protos(draw, dtype: int) -> tensor_pb2.TensorProto:
    """Mostly of the dtype the signature wants, so most reach the decoder."""
    if draw(st.sampled_from([True] * 4 + [False])):
        proto = tensor_pb2.TensorProto(dtype=dtype)
    else:
        proto = tensor_pb2.TensorProto(dtype=draw(_DTYPES))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=1) | st.lists(_SIZES, max_size=6))
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_shape.unknown_rank = draw(st.sampled_from([False] * 9 + [True]))
    count = int(np.prod(shape)) if shape and all(0 <= d <= 4 for d in shape) else 1
    # the number of values: often the right one, else anything small
    n = draw(st.just(count) | st.just(1) | st.integers(0, 8))
    if draw(st.sampled_from([False] * 3 + [True])):
        proto.tensor_content = draw(st.binary(min_size=n * 4, max_size=n * 4) | st.binary(max_size=64))
    ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
    values = {
        "float_val": st.floats(width=32),
        "double_val": st.floats(),
        "int_val": ints,
        "half_val": ints,
        "scomplex_val": st.floats(width=32),
        "int64_val": st.integers(-(2**63), 2**63 - 1),
        "bool_val": st.booleans(),
        "string_val": st.binary(max_size=16),
    }
    fields = draw(st.lists(st.sampled_from(sorted(values)), max_size=3))
    if proto.dtype in (T.DT_FLOAT, T.DT_STRING, T.DT_INT32):
        fields.append({T.DT_FLOAT: "float_val", T.DT_STRING: "string_val"}.get(proto.dtype, "int_val"))
    for field in fields:
        size = n if draw(st.booleans()) else draw(st.integers(0, 8))
        getattr(proto, field).extend(draw(st.lists(values[field], min_size=size, max_size=size)))
    proto.version_number = draw(st.integers(-(2**31), 2**31 - 1))
    return proto


# derandomize: the same 200 examples on every run, so CI is reproducible (a random search found
# the zero-element shape [0, 1089924710, 2115598434] that numpy could not allocate; run it with
# derandomize=False and more examples to search further). No example database is written.
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(model=st.sampled_from(sorted(_SIGNATURES)), data=st.data())
def test_fuzzed_tensors_get_an_answer_never_an_internal_error(server, stub, model, data):
    names = _SIGNATURES[model]
    inputs = {name: data.draw(tensor_protos(dtype), label=name) for name, dtype in names.items()}
    if data.draw(st.sampled_from([False] * 9 + [True]), label="drop one, add one"):  # sometimes a name too few or many
        inputs.pop(sorted(inputs)[0])
        inputs["other"] = data.draw(tensor_protos(T.DT_FLOAT), label="other")
    request = _request(model, inputs)
    try:
        stub.Predict(request, timeout=30)
        event("answered")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details(), request)
        event(e.details()[:120])
    assert server.proc.poll() is None, server.output()[-4000:]
    still_serving(server, stub)
