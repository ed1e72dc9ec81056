"""The caps on a request's size (mlbridge_server.serving.limits), without a server."""

import grpc
import numpy as np
import pytest

from mlbridge.errors import MlbridgeError
from mlbridge.tensors import shape_proto, to_tensor_proto
from mlbridge.wire import tensor_pb2, types_pb2
from mlbridge_server.serving.errors import RequestError
from mlbridge_server.serving.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ELEMENTS,
    MAX_BYTES_ENV,
    MAX_ELEMENTS_ENV,
    RequestLimits,
)


def _declared(shape, dtype=types_pb2.DT_FLOAT, **values) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape_proto(tuple(shape)), **values)


def test_defaults_and_environment():
    assert RequestLimits.from_env({}) == RequestLimits(64 * 1024 * 1024, 256 * 1024 * 1024)
    assert (DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_BYTES) == (2**26, 2**28)
    limits = RequestLimits.from_env({MAX_ELEMENTS_ENV: "1_000", MAX_BYTES_ENV: " 4096 "})
    assert limits == RequestLimits(1000, 4096)
    for bad in ("0", "-5", "lots", "1e6"):
        with pytest.raises(MlbridgeError, match=MAX_ELEMENTS_ENV):
            RequestLimits.from_env({MAX_ELEMENTS_ENV: bad})


def _refused(limits: RequestLimits, inputs) -> str:
    with pytest.raises(RequestError) as info:
        limits.check(inputs)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return info.value.message


def test_the_element_cap_is_per_request():
    limits = RequestLimits(max_elements=100, max_bytes=10**9)
    limits.check({"a": to_tensor_proto(np.zeros(60, np.float32))})
    message = _refused(
        limits,
        {"a": to_tensor_proto(np.zeros(60, np.float32)), "b": to_tensor_proto(np.zeros(60, np.int8))},
    )
    assert 'input "b"' in message and "120 elements" in message
    assert "cap of 100 elements per request" in message and MAX_ELEMENTS_ENV in message


def test_the_byte_cap_counts_decoded_values():
    limits = RequestLimits(max_elements=10**9, max_bytes=1000)
    limits.check({"a": to_tensor_proto(np.zeros(125, np.float64))})
    # one value fills the tensor: 4 bytes on the wire, 4000 decoded
    message = _refused(limits, {"a": _declared([1000], float_val=[1.0])})
    assert "4000 bytes" in message and "cap of 1000 bytes" in message and MAX_BYTES_ENV in message
    message = _refused(limits, {"s": _declared([3], types_pb2.DT_STRING, string_val=[b"x" * 400])})
    assert 'input "s"' in message and "1200 bytes" in message


def test_absurd_and_negative_shapes_are_refused_by_name():
    limits = RequestLimits()
    assert "multiply to more than 2**48" in _refused(limits, {"x": _declared([2**62, 2**62])})
    assert "cap of" in _refused(limits, {"x": _declared([2**20, 2**20])})
    assert "fully known shape" in _refused(limits, {"x": _declared([-7])})
    message = _refused(limits, {"x": _declared([12_000_000, 12_000_000])})
    assert 'input "x" (shape [12000000, 12000000], 144000000000000 elements)' in message
