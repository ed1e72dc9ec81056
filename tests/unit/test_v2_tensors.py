"""The Open Inference Protocol's tensor codec (mlbridge.v2_tensors): numpy <-> v2 tensors, no
TensorFlow."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mlbridge import v2_tensors as v2
from mlbridge.tensors import TensorCodecError
from mlbridge.wire import open_inference_pb2 as pb

Tensor = pb.ModelInferRequest.InferInputTensor


def _tensor(datatype: str, shape: list[int], **contents) -> Tensor:
    tensor = Tensor(name="t", datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return tensor


NUMERIC = [
    ("BOOL", np.array([[True, False], [False, True]])),
    ("UINT8", np.array([0, 255], np.uint8)),
    ("UINT16", np.array([0, 65535], np.uint16)),
    ("UINT32", np.array([0, 2**32 - 1], np.uint32)),
    ("UINT64", np.array([0, 2**64 - 1], np.uint64)),
    ("INT8", np.array([-128, 127], np.int8)),
    ("INT16", np.array([-32768, 32767], np.int16)),
    ("INT32", np.array([[-(2**31)], [2**31 - 1]], np.int32)),
    ("INT64", np.array([-(2**63), 2**63 - 1], np.int64)),
    ("FP16", np.array([0.5, -2.0], np.float16)),
    ("FP32", np.array([[1.5, -2.25, 3.0]], np.float32)),
    ("FP64", np.array([1e300, -1e-300], np.float64)),
]


@pytest.mark.parametrize(("datatype", "array"), NUMERIC, ids=[d for d, _ in NUMERIC])
def test_raw_round_trip(datatype, array):
    got_type, shape, raw = v2.encode_raw(array)
    assert got_type == datatype
    assert shape == list(array.shape)
    assert len(raw) == array.size * array.itemsize
    back = v2.decode(Tensor(datatype=got_type, shape=shape), raw)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(("datatype", "array"), [c for c in NUMERIC if c[0] != "FP16"],
                         ids=[d for d, _ in NUMERIC if d != "FP16"])
def test_typed_round_trip(datatype, array):
    got_type, shape, contents = v2.encode_contents(array)
    tensor = Tensor(datatype=got_type, shape=shape, contents=contents)
    back = v2.decode(tensor)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_raw_is_little_endian_row_major():
    _, _, raw = v2.encode_raw(np.array([[1, 2], [3, 4]], dtype=">i4"))
    assert raw == struct.pack("<4i", 1, 2, 3, 4)


def test_bytes_raw_have_a_4_byte_little_endian_length_prefix():
    datatype, shape, raw = v2.encode_raw(np.array(["ab", "é", ""], dtype=object))
    assert (datatype, shape) == ("BYTES", [3])
    assert raw == b"\x02\x00\x00\x00ab" + b"\x02\x00\x00\x00\xc3\xa9" + b"\x00\x00\x00\x00"
    back = v2.decode(Tensor(datatype="BYTES", shape=[3]), raw)
    assert back.dtype == object
    assert back.tolist() == [b"ab", "é".encode(), b""]


def test_numpy_str_arrays_are_bytes():
    datatype, shape, contents = v2.encode_contents(np.array([["x", "yz"]]))
    assert (datatype, shape) == ("BYTES", [1, 2])
    assert list(contents.bytes_contents) == [b"x", b"yz"]


def test_typed_bytes_decode():
    back = v2.decode(_tensor("BYTES", [2, 1], bytes_contents=[b"a", b"bc"]))
    assert back.shape == (2, 1)
    assert back[1, 0] == b"bc"


def test_raw_bytes_that_end_early_are_refused():
    raw = v2.pack_bytes([b"abc"])[:-1]
    with pytest.raises(TensorCodecError, match="element 0 declares 3 bytes but only 2 remain"):
        v2.decode(Tensor(datatype="BYTES", shape=[1]), raw)
    with pytest.raises(TensorCodecError, match="end at element 1 of 2"):
        v2.decode(Tensor(datatype="BYTES", shape=[2]), v2.pack_bytes([b"a"]))


def test_raw_bytes_with_more_elements_than_the_shape_are_refused():
    with pytest.raises(TensorCodecError, match="after the 1 elements the shape declares"):
        v2.decode(Tensor(datatype="BYTES", shape=[1]), v2.pack_bytes([b"a", b"b"]))


def test_raw_numeric_length_must_match_the_shape():
    with pytest.raises(TensorCodecError, match=r"hold 8 bytes, but shape \[3\] of FP32 takes 12"):
        v2.decode(Tensor(datatype="FP32", shape=[3]), b"\x00" * 8)


def test_a_huge_shape_with_few_values_is_refused_before_allocating():
    with pytest.raises(TensorCodecError, match=r"shape \[12000000\] of FP32 takes 48000000"):
        v2.decode(Tensor(datatype="FP32", shape=[12_000_000]), b"")
    with pytest.raises(TensorCodecError, match="holds 0 values, but shape"):
        v2.decode(_tensor("FP32", [12_000_000]))


def test_typed_count_must_match_the_shape():
    with pytest.raises(TensorCodecError, match=r"contents.fp32_contents holds 2 values, but shape \[3\] takes 3"):
        v2.decode(_tensor("FP32", [3], fp32_contents=[1.0, 2.0]))


def test_values_in_the_wrong_field_are_refused():
    with pytest.raises(TensorCodecError, match="INT64 values go in contents.int64_contents, got int_contents"):
        v2.decode(_tensor("INT64", [1], int_contents=[1]))


def test_both_typed_and_raw_are_refused():
    with pytest.raises(TensorCodecError, match="both typed contents and raw contents"):
        v2.decode(_tensor("FP32", [1], fp32_contents=[1.0]), b"\x00" * 4)


def test_fp16_has_no_typed_field():
    with pytest.raises(TensorCodecError, match="FP16 values travel only as raw contents"):
        v2.decode(_tensor("FP16", [1]))
    with pytest.raises(TensorCodecError, match="send it raw"):
        v2.encode_contents(np.array([1.0], np.float16))


def test_narrow_ints_out_of_range_are_refused_not_wrapped():
    with pytest.raises(TensorCodecError, match="value 300 is out of the range of INT8"):
        v2.decode(_tensor("INT8", [2], int_contents=[1, 300]))
    with pytest.raises(TensorCodecError, match="value 70000 is out of the range of UINT16"):
        v2.decode(_tensor("UINT16", [1], uint_contents=[70000]))


def test_raw_bool_must_be_0_or_1():
    with pytest.raises(TensorCodecError, match="0 or 1"):
        v2.decode(Tensor(datatype="BOOL", shape=[2]), b"\x01\x07")


@pytest.mark.parametrize("datatype", ["FLOAT32", "fp32", "", "STRING"])
def test_unknown_datatypes_are_named(datatype):
    with pytest.raises(TensorCodecError, match=f'datatype "{datatype}" is not one of BOOL'):
        v2.decode(Tensor(datatype=datatype, shape=[1]), b"\x00" * 4)


@pytest.mark.parametrize(("shape", "message"), [
    ([-1], "no negative size"),
    ([1] * 65, "at most 64 dimensions"),
    ([0, 2**30, 2**30], "multiply to more than 2"),
])
def test_bad_shapes(shape, message):
    with pytest.raises(TensorCodecError, match=message):
        v2.check_shape(shape)


def test_zero_element_tensors_decode_to_their_shape():
    back = v2.decode(Tensor(datatype="FP32", shape=[0, 3]), b"")
    assert back.shape == (0, 3)


def test_tensor_size_counts_without_decoding():
    assert v2.tensor_size(Tensor(datatype="FP64", shape=[10, 3])) == (30, 240)
    assert v2.tensor_size(_tensor("BYTES", [2], bytes_contents=[b"abc", b"de"])) == (2, 5)
    raw = v2.pack_bytes([b"abc", b"de"])
    assert v2.tensor_size(Tensor(datatype="BYTES", shape=[2]), raw) == (2, 5)
    # The declared shape counts, whatever was sent: the caps see 12M elements.
    assert v2.tensor_size(Tensor(datatype="FP32", shape=[12_000_000]), b"") == (12_000_000, 48_000_000)


def test_datatype_names_map_both_ways():
    for datatype in v2.DATATYPES:
        assert v2.datatype_for(v2.dtype_name_for(datatype)) == datatype
    assert v2.datatype_for("string") == "BYTES"
    assert v2.datatype_for("complex64") is None
    with pytest.raises(TensorCodecError, match="is not one of"):
        v2.dtype_name_for("BF16")


def test_encode_with_a_datatype_converts():
    datatype, _, raw = v2.encode_raw([1, 2], "FP32")
    assert datatype == "FP32"
    assert np.frombuffer(raw, "<f4").tolist() == [1.0, 2.0]
    with pytest.raises(TensorCodecError, match="cannot convert to INT32"):
        v2.encode_raw(["x"], "INT32")


def test_a_bytes_tensor_of_numbers_is_refused():
    with pytest.raises(TensorCodecError, match="a BYTES tensor holds int 3"):
        v2.encode_raw(np.array([3], dtype=object), "BYTES")
