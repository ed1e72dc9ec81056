"""The tensor codec (mlbridge.tensors): numpy <-> TensorProto, no TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from mlbridge.tensors import (
    TensorCodecError,
    data_type,
    decoded_nbytes,
    dtype_name,
    element_count,
    from_tensor_proto,
    numpy_dtype,
    shape_proto,
    shape_tuple,
    to_tensor_proto,
    write_tensor_proto,
)
from mlbridge.wire import tensor_pb2, types_pb2

T = types_pb2


def _proto(dtype: int, shape: list[int], **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape_proto(tuple(shape)))
    for field, items in values.items():
        getattr(proto, field).extend(items)
    return proto


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([1.5, -2.25, np.inf]),
        np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        np.array([-128, 127], dtype=np.int8),
        np.array([0, 255], dtype=np.uint8),
        np.array([-7, 9], dtype=np.int16),
        np.array([0, 65535], dtype=np.uint16),
        np.array([2**32 - 1], dtype=np.uint32),
        np.array([2**64 - 1], dtype=np.uint64),
        np.array([True, False, True]),
        np.array([0.5, -2.0], dtype=np.float16),
        np.array([1 + 2j, -3j], dtype=np.complex64),
        np.array([1 - 1j], dtype=np.complex128),
        np.array(4.5, dtype=np.float32),
        np.zeros((0, 2), dtype=np.float64),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_numeric_round_trip_through_tensor_content(array):
    proto = to_tensor_proto(array)
    assert proto.tensor_content or array.size == 0
    assert [d.size for d in proto.tensor_shape.dim] == list(array.shape)
    back = from_tensor_proto(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_strings_use_string_val():
    proto = to_tensor_proto(np.array([["a", "héllo"], ["", "x"]]))
    assert proto.dtype == T.DT_STRING and not proto.tensor_content
    assert list(proto.string_val) == [b"a", "héllo".encode(), b"", b"x"]
    back = from_tensor_proto(proto)
    assert back.dtype == object and back.shape == (2, 2)
    assert back.tolist() == [[b"a", "héllo".encode()], [b"", b"x"]]


@pytest.mark.parametrize(
    "value", [["a", "b"], [b"a", b"b"], np.array([b"a", b"b"]), np.array(["a", b"b"], dtype=object)]
)
def test_string_inputs_of_every_kind(value):
    proto = to_tensor_proto(value)
    assert proto.dtype == T.DT_STRING and list(proto.string_val) == [b"a", b"b"]


def test_scalar_string():
    proto = to_tensor_proto("abc")
    assert list(proto.tensor_shape.dim) == [] and from_tensor_proto(proto) == b"abc"


def test_explicit_dtype_converts():
    proto = to_tensor_proto([1, 2, 3], dtype="float32")
    assert proto.dtype == T.DT_FLOAT
    assert from_tensor_proto(proto).dtype == np.float32
    assert to_tensor_proto([1.0], dtype=T.DT_DOUBLE).dtype == T.DT_DOUBLE
    assert to_tensor_proto([1.0], dtype=np.float16).dtype == T.DT_HALF
    assert list(to_tensor_proto(["1"], dtype="string").string_val) == [b"1"]
    with pytest.raises(TensorCodecError, match="str or bytes"):
        to_tensor_proto([1, 2], dtype="string")  # numbers are not text


def test_python_lists_take_numpy_defaults():
    assert to_tensor_proto([1.0, 2.0]).dtype == T.DT_DOUBLE
    assert to_tensor_proto([1, 2]).dtype == T.DT_INT64
    assert to_tensor_proto([True]).dtype == T.DT_BOOL


def test_object_array_of_numbers_needs_a_dtype():
    with pytest.raises(TensorCodecError, match="dtype"):
        to_tensor_proto(np.array([1, 2], dtype=object))
    assert to_tensor_proto(np.array([1, 2], dtype=object), dtype="int32").dtype == T.DT_INT32


def test_mixed_string_tensor_is_rejected():
    with pytest.raises(TensorCodecError, match="str or bytes"):
        to_tensor_proto(np.array(["a", 1], dtype=object))


# -- the typed *_val fields that official clients send ------------------------


@pytest.mark.parametrize(
    "dtype,field,values,expected",
    [
        (T.DT_FLOAT, "float_val", [1.5, 2.5], np.array([1.5, 2.5], np.float32)),
        (T.DT_DOUBLE, "double_val", [1.5, 2.5], np.array([1.5, 2.5])),
        (T.DT_INT32, "int_val", [-1, 2], np.array([-1, 2], np.int32)),
        (T.DT_INT8, "int_val", [-1, 2], np.array([-1, 2], np.int8)),
        (T.DT_UINT8, "int_val", [255, 2], np.array([255, 2], np.uint8)),
        (T.DT_INT16, "int_val", [-300, 2], np.array([-300, 2], np.int16)),
        (T.DT_UINT16, "int_val", [65535, 2], np.array([65535, 2], np.uint16)),
        (T.DT_INT64, "int64_val", [2**40, -3], np.array([2**40, -3], np.int64)),
        (T.DT_UINT32, "uint32_val", [2**32 - 1, 0], np.array([2**32 - 1, 0], np.uint32)),
        (T.DT_UINT64, "uint64_val", [2**64 - 1, 0], np.array([2**64 - 1, 0], np.uint64)),
        (T.DT_BOOL, "bool_val", [True, False], np.array([True, False])),
        (T.DT_STRING, "string_val", [b"a", b"b"], np.array([b"a", b"b"], dtype=object)),
        # float16 travels as its bit pattern: 0x3C00 is 1.0, 0xC000 is -2.0
        (T.DT_HALF, "half_val", [0x3C00, 0xC000], np.array([1.0, -2.0], np.float16)),
        (T.DT_COMPLEX64, "scomplex_val", [1, 2, 3, 4], np.array([1 + 2j, 3 + 4j], np.complex64)),
        (T.DT_COMPLEX128, "dcomplex_val", [1, -1, 0, 5], np.array([1 - 1j, 5j], np.complex128)),
    ],
)
def test_typed_values(dtype, field, values, expected):
    back = from_tensor_proto(_proto(dtype, [2], **{field: values}))
    assert back.dtype == expected.dtype
    np.testing.assert_array_equal(back, expected)


def test_one_value_fills_the_tensor():
    back = from_tensor_proto(_proto(T.DT_FLOAT, [2, 3], float_val=[0.5]))
    np.testing.assert_array_equal(back, np.full((2, 3), 0.5, np.float32))


def test_one_value_fills_the_tensor_of_every_type():
    assert from_tensor_proto(_proto(T.DT_STRING, [3], string_val=[b"a"])).tolist() == [b"a"] * 3
    back = from_tensor_proto(_proto(T.DT_COMPLEX64, [2], scomplex_val=[1, 2]))
    np.testing.assert_array_equal(back, np.array([1 + 2j, 1 + 2j], np.complex64))


def test_a_short_list_is_refused_though_tensorflow_pads_it():
    # TensorFlow repeats the last value; a request that short is a mistake.
    with pytest.raises(TensorCodecError, match=r"int64_val holds 2 values, shape \[5\] has 5"):
        from_tensor_proto(_proto(T.DT_INT64, [5], int64_val=[1, 2]))


def test_no_values_only_for_a_tensor_of_no_elements():
    assert from_tensor_proto(_proto(T.DT_DOUBLE, [0])).shape == (0,)
    assert from_tensor_proto(_proto(T.DT_STRING, [2, 0])).shape == (2, 0)
    # TensorFlow would zero-fill these: 63 bytes could declare 12 million floats.
    with pytest.raises(TensorCodecError, match=r"shape \[12000000\] has 12000000 elements"):
        from_tensor_proto(_proto(T.DT_FLOAT, [12_000_000]))
    with pytest.raises(TensorCodecError, match="no string values"):
        from_tensor_proto(_proto(T.DT_STRING, [2]))


def test_values_in_the_wrong_field_are_named():
    with pytest.raises(TensorCodecError, match=r"float_val \(int_val cannot carry float32"):
        from_tensor_proto(_proto(T.DT_FLOAT, [2], int_val=[1, 2]))


def test_absurd_shapes_are_refused_before_anything_is_allocated():
    proto = _proto(T.DT_FLOAT, [2**24, 2**24], float_val=[1.0])
    assert element_count(proto) == 2**48
    with pytest.raises(TensorCodecError, match="cannot fill"):
        from_tensor_proto(proto)
    for shape in ([2**40, 2**40, 2**40], [0, 1_089_924_710, 2_115_598_434]):  # the second has no elements
        with pytest.raises(TensorCodecError, match=r"multiply to more than 2\*\*48"):
            from_tensor_proto(_proto(T.DT_FLOAT, shape))
        with pytest.raises(TensorCodecError, match=r"multiply to more than 2\*\*48"):
            element_count(_proto(T.DT_FLOAT, shape))
    with pytest.raises(TensorCodecError, match="at most 64 dimensions"):
        from_tensor_proto(_proto(T.DT_FLOAT, [1] * 65, float_val=[1.0]))


def test_decoded_nbytes():
    assert decoded_nbytes(to_tensor_proto(np.zeros((3, 2), np.float64))) == 48
    assert decoded_nbytes(_proto(T.DT_FLOAT, [1000], float_val=[1.0])) == 4000
    assert decoded_nbytes(_proto(T.DT_STRING, [2], string_val=[b"ab", b"c"])) == 3
    assert decoded_nbytes(_proto(T.DT_STRING, [4], string_val=[b"abc"])) == 12


def test_too_many_values():
    with pytest.raises(TensorCodecError, match="3 values"):
        from_tensor_proto(_proto(T.DT_FLOAT, [2], float_val=[1, 2, 3]))


def test_tensor_content_of_the_wrong_size():
    proto = to_tensor_proto(np.zeros(3, np.float32))
    proto.tensor_shape.dim[0].size = 4
    with pytest.raises(TensorCodecError, match="12 bytes"):
        from_tensor_proto(proto)


def test_unknown_shapes_are_rejected():
    proto = _proto(T.DT_FLOAT, [2], float_val=[1])
    proto.tensor_shape.dim[0].size = -1
    with pytest.raises(TensorCodecError, match="fully known"):
        from_tensor_proto(proto)
    proto.tensor_shape.unknown_rank = True
    with pytest.raises(TensorCodecError, match="known shape"):
        from_tensor_proto(proto)


def test_unsupported_types_are_named():
    with pytest.raises(TensorCodecError, match="bfloat16"):
        from_tensor_proto(_proto(T.DT_BFLOAT16, [1], half_val=[1]))
    with pytest.raises(TensorCodecError, match="resource"):
        from_tensor_proto(_proto(T.DT_RESOURCE, [1]))


# -- dtype names --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,dt",
    [
        ("float32", T.DT_FLOAT),
        ("float64", T.DT_DOUBLE),
        ("int32", T.DT_INT32),
        ("int64", T.DT_INT64),
        ("string", T.DT_STRING),
        ("bool", T.DT_BOOL),
        ("float16", T.DT_HALF),
        ("uint8", T.DT_UINT8),
    ],
)
def test_dtype_names_round_trip(name, dt):
    assert data_type(name) == dt
    assert dtype_name(dt) == name


def test_dtype_aliases_and_tensorflow_names():
    assert data_type("float") == T.DT_FLOAT
    assert data_type("double") == T.DT_DOUBLE
    assert data_type("DT_INT64") == T.DT_INT64
    assert data_type("bfloat16") == T.DT_BFLOAT16
    assert data_type(np.dtype(">f8")) == T.DT_DOUBLE
    assert data_type(np.dtype("U3")) == T.DT_STRING
    assert data_type(T.DT_INT8) == T.DT_INT8
    assert dtype_name(T.DT_BFLOAT16) == "bfloat16"
    assert dtype_name(T.DT_VARIANT) == "variant"
    assert numpy_dtype("string") == np.dtype(object)
    with pytest.raises(TensorCodecError, match="unknown dtype"):
        data_type("float33")
    with pytest.raises(TensorCodecError):
        data_type(999)


def test_shapes():
    assert shape_tuple(shape_proto((None, 3))) == (None, 3)
    assert shape_proto((None, 3)).dim[0].size == -1
    assert shape_tuple(shape_proto(None)) is None
    assert shape_tuple(shape_proto(())) == ()


@pytest.mark.parametrize(
    "array, dtype",
    [
        (np.arange(6, dtype=np.float32).reshape(2, 3), None),  # the short way
        (np.arange(6, dtype=np.float32).reshape(2, 3), "float32"),  # the short way, dtype named
        (np.arange(6, dtype=np.int64)[::2], None),  # not contiguous: tobytes copies in order
        (np.arange(6, dtype=np.float64).reshape(2, 3).T, None),  # Fortran order
        (np.arange(4, dtype=">i4"), None),  # big-endian: converted
        (np.arange(4, dtype=np.float64), "float32"),  # another dtype asked for: converted
        (np.float32(2.5), None),  # numpy scalar
        (np.array(True), None),  # 0-d bool array
        (np.array([b"a", b"bc"], dtype=object), None),  # strings
        ([1.5, 2.5], None),  # a list
        (np.zeros((0, 3), dtype=np.int32), None),  # no elements
    ],
)
def test_write_tensor_proto_writes_what_to_tensor_proto_makes(array, dtype):
    """The short way into a request's field gives the very message to_tensor_proto gives, and it
    decodes to the values given."""
    proto = tensor_pb2.TensorProto()
    write_tensor_proto(proto, array, dtype)
    assert proto == to_tensor_proto(array, dtype)
    decoded = from_tensor_proto(proto)
    want = np.asarray(array, dtype=None if dtype is None else np.dtype(dtype))
    if want.dtype.kind != "O":
        np.testing.assert_array_equal(decoded, want.astype(want.dtype.newbyteorder("=")))
    assert decoded.shape == want.shape


def test_write_tensor_proto_refuses_what_to_tensor_proto_refuses():
    with pytest.raises(TensorCodecError, match="holds int"):
        write_tensor_proto(tensor_pb2.TensorProto(), np.array([b"a", 1], dtype=object))
