"""numpy arrays <-> TensorProto, the way TensorFlow and TF Serving read them.

Encoding puts numeric tensors in ``tensor_content`` (raw little-endian bytes,
the cheapest form to build and parse) and strings in ``string_val``. Decoding
accepts everything official clients send: ``tensor_content`` and every typed
``*_val`` list.

The declared shape must match the values (``from_tensor_proto``), with N the
shape's element count:

- ``tensor_content`` must hold exactly N × item size bytes (as TensorFlow);
- a typed ``*_val`` list must hold exactly N values (complex: N pairs), or
  exactly one value, which fills the tensor: what
  ``tf.make_tensor_proto(1.0, shape=[3])`` sends;
- no values at all only for a tensor of no elements (N = 0).

TensorFlow itself (``Tensor::FromProto``, ``tf.make_ndarray``) is laxer: it
zero-fills a tensor sent without values and pads a short list with its last
value. Those are refused here, with INVALID_ARGUMENT on the model server: a
63-byte request declaring shape [12000000] with no values would otherwise cost
the server 48 MB and a model run. The shape must also be fully known, with no
more than ``MAX_RANK`` dimensions; ``element_count`` and ``decoded_nbytes``
measure a tensor before it is decoded, for callers that cap sizes.

dtype names follow numpy: "float32", "float64", "int32", "int64", "string",
"bool", ... (``dtype_name`` / ``data_type``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mlbridge.wire import tensor_pb2, tensor_shape_pb2, types_pb2

DataType = int  # a mlbridge.wire.types_pb2.DataType value

__all__ = [
    "MAX_RANK",
    "TensorCodecError",
    "data_type",
    "declared_shape",
    "decoded_nbytes",
    "dtype_name",
    "element_count",
    "from_tensor_proto",
    "numpy_dtype",
    "to_tensor_proto",
    "write_tensor_proto",
]


class TensorCodecError(ValueError):
    """A tensor that cannot be encoded or decoded; the message says why."""


_T = types_pb2

# The most dimensions a decoded tensor may have: numpy's limit (TensorFlow's is 254).
MAX_RANK = 64
# The most elements the nonzero sizes of a shape may multiply to (far past any request cap; numpy
# needs size x item size, up to 16 bytes, to fit in a signed 64-bit index).
MAX_SPAN = 2**48

# DataType -> (name, numpy dtype or None when numpy has no such type).
_TYPES: dict[int, tuple[str, np.dtype | None]] = {
    _T.DT_FLOAT: ("float32", np.dtype(np.float32)),
    _T.DT_DOUBLE: ("float64", np.dtype(np.float64)),
    _T.DT_HALF: ("float16", np.dtype(np.float16)),
    _T.DT_INT8: ("int8", np.dtype(np.int8)),
    _T.DT_INT16: ("int16", np.dtype(np.int16)),
    _T.DT_INT32: ("int32", np.dtype(np.int32)),
    _T.DT_INT64: ("int64", np.dtype(np.int64)),
    _T.DT_UINT8: ("uint8", np.dtype(np.uint8)),
    _T.DT_UINT16: ("uint16", np.dtype(np.uint16)),
    _T.DT_UINT32: ("uint32", np.dtype(np.uint32)),
    _T.DT_UINT64: ("uint64", np.dtype(np.uint64)),
    _T.DT_BOOL: ("bool", np.dtype(np.bool_)),
    _T.DT_STRING: ("string", np.dtype(object)),
    _T.DT_COMPLEX64: ("complex64", np.dtype(np.complex64)),
    _T.DT_COMPLEX128: ("complex128", np.dtype(np.complex128)),
    # Quantized types travel as their storage type.
    _T.DT_QINT8: ("qint8", np.dtype(np.int8)),
    _T.DT_QUINT8: ("quint8", np.dtype(np.uint8)),
    _T.DT_QINT16: ("qint16", np.dtype(np.int16)),
    _T.DT_QUINT16: ("quint16", np.dtype(np.uint16)),
    _T.DT_QINT32: ("qint32", np.dtype(np.int32)),
}

_BY_NAME: dict[str, int] = {name: dt for dt, (name, _) in _TYPES.items()}
_BY_NAME.update(
    {
        "float": _T.DT_FLOAT,
        "double": _T.DT_DOUBLE,
        "half": _T.DT_HALF,
        "str": _T.DT_STRING,
        "bytes": _T.DT_STRING,
        "object": _T.DT_STRING,
    }
)

# numpy kind+itemsize -> DataType, for arrays encoded without an explicit dtype.
_BY_NUMPY: dict[np.dtype, int] = {
    np_dtype: dt
    for dt, (name, np_dtype) in _TYPES.items()
    if np_dtype is not None and not name.startswith("q") and dt != _T.DT_STRING
}

# tensor_content is little-endian: a native array's bytes are the wire's on such a machine.
_NATIVE_IS_WIRE = sys.byteorder == "little"

# Which typed *_val field carries each DataType.
_VAL_FIELD: dict[int, str] = {
    _T.DT_FLOAT: "float_val",
    _T.DT_DOUBLE: "double_val",
    _T.DT_HALF: "half_val",
    _T.DT_INT8: "int_val",
    _T.DT_INT16: "int_val",
    _T.DT_INT32: "int_val",
    _T.DT_UINT8: "int_val",
    _T.DT_UINT16: "int_val",
    _T.DT_QINT8: "int_val",
    _T.DT_QUINT8: "int_val",
    _T.DT_QINT16: "int_val",
    _T.DT_QUINT16: "int_val",
    _T.DT_QINT32: "int_val",
    _T.DT_INT64: "int64_val",
    _T.DT_UINT32: "uint32_val",
    _T.DT_UINT64: "uint64_val",
    _T.DT_BOOL: "bool_val",
    _T.DT_STRING: "string_val",
    _T.DT_COMPLEX64: "scomplex_val",
    _T.DT_COMPLEX128: "dcomplex_val",
}


def dtype_name(data_type: DataType) -> str:
    """The name of a DataType: "float32", "int64", "string", ...

    Types numpy cannot hold get TensorFlow's own name in lower case
    ("bfloat16", "resource", "variant").
    """
    if data_type in _TYPES:
        return _TYPES[data_type][0]
    try:
        return types_pb2.DataType.Name(data_type).removeprefix("DT_").lower()
    except ValueError:
        return f"dtype({data_type})"


# Every DataType value, once: the enum's values() builds a new list on each call, and this is
# asked for every tensor written.
_DATA_TYPE_VALUES = frozenset(types_pb2.DataType.values())


def data_type(dtype: Any) -> DataType:
    """The DataType for a dtype name ("float32", "double", "string", ...),
    a numpy dtype, or a DataType value (returned as is)."""
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        if int(dtype) not in _DATA_TYPE_VALUES:
            raise TensorCodecError(f"unknown DataType value {dtype}")
        return int(dtype)
    if isinstance(dtype, str):
        key = dtype.strip().lower()
        if key in _BY_NAME:
            return _BY_NAME[key]
        if key.upper() in types_pb2.DataType.keys():
            return types_pb2.DataType.Value(key.upper())
        if ("DT_" + key.upper()) in types_pb2.DataType.keys():
            return types_pb2.DataType.Value("DT_" + key.upper())
        raise TensorCodecError(
            f"unknown dtype {dtype!r}: use one of {', '.join(sorted(set(_BY_NAME)))}"
        )
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as e:
        raise TensorCodecError(f"unknown dtype {dtype!r}") from e
    if np_dtype.kind in "OUST":
        return _T.DT_STRING
    np_dtype = np_dtype.newbyteorder("=")
    if np_dtype not in _BY_NUMPY:
        raise TensorCodecError(f"numpy dtype {np_dtype} has no TensorFlow DataType")
    return _BY_NUMPY[np_dtype]


def numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype that holds a DataType (object for strings)."""
    dt = data_type(dtype)
    if dt not in _TYPES:
        raise TensorCodecError(f"tensors of type {dtype_name(dt)} are not supported")
    return _TYPES[dt][1]  # type: ignore[return-value]


def shape_proto(shape: tuple[int | None, ...] | None) -> tensor_shape_pb2.TensorShapeProto:
    """A TensorShapeProto; None for unknown rank, None or -1 for an unknown size."""
    proto = tensor_shape_pb2.TensorShapeProto()
    if shape is None:
        proto.unknown_rank = True
        return proto
    for size in shape:
        proto.dim.add(size=-1 if size is None else int(size))
    return proto


def shape_tuple(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int | None, ...] | None:
    """A shape as a tuple with None for unknown sizes; None for unknown rank."""
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def encode_strings(array: np.ndarray, kind: str = "string") -> list[bytes]:
    """The elements of an array of str or bytes, as bytes (str as UTF-8); any
    other element raises TensorCodecError naming ``kind``, the tensor's type."""
    out = []
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, str):
            out.append(item.encode("utf-8"))
        else:
            raise TensorCodecError(
                f"a {kind} tensor holds {type(item).__name__} {item!r}: pass str or bytes"
            )
    return out


def write_tensor_proto(proto: tensor_pb2.TensorProto, array: Any, dtype: Any = None) -> None:
    """Encode an array into ``proto`` (an empty TensorProto, typically a field
    of a request being built) as ``to_tensor_proto`` would, without making a
    message to copy from. A numeric numpy array that already has the wanted
    dtype, in this machine's byte order, takes the short way: its bytes go
    straight into tensor_content."""
    if type(array) is np.ndarray and _NATIVE_IS_WIRE:
        target = _BY_NUMPY.get(array.dtype)
        if target is not None and (dtype is None or data_type(dtype) == target):
            proto.dtype = target
            proto.tensor_shape.SetInParent()  # present even for a scalar, as to_tensor_proto makes it
            dims = proto.tensor_shape.dim
            for size in array.shape:
                dims.add().size = size
            proto.tensor_content = array.tobytes()
            return
    proto.CopyFrom(to_tensor_proto(array, dtype))


def to_tensor_proto(array: Any, dtype: Any = None) -> tensor_pb2.TensorProto:
    """Encode an array (anything ``np.asarray`` takes) as a TensorProto.

    ``dtype`` (a name, numpy dtype or DataType) converts the values first;
    without it the array's own dtype decides (str, bytes and object arrays
    become DT_STRING).
    """
    target = None if dtype is None else data_type(dtype)
    if target == _T.DT_STRING or (target is None and _is_string_like(array)):
        arr = np.asarray(array, dtype=object)
        proto = tensor_pb2.TensorProto(dtype=_T.DT_STRING, tensor_shape=shape_proto(arr.shape))
        proto.string_val.extend(encode_strings(arr))
        return proto

    if target is None:
        arr = np.asarray(array)
        if arr.dtype.kind in "OUST":
            raise TensorCodecError("cannot tell the dtype of an object array: pass dtype=")
        target = data_type(arr.dtype)
    np_dtype = numpy_dtype(target)
    try:
        arr = np.asarray(array, dtype=np_dtype)
    except (TypeError, ValueError) as e:
        raise TensorCodecError(f"cannot convert to {dtype_name(target)}: {e}") from e
    proto = tensor_pb2.TensorProto(dtype=target, tensor_shape=shape_proto(arr.shape))
    proto.tensor_content = np.ascontiguousarray(arr, dtype=np_dtype.newbyteorder("<")).tobytes()
    return proto


def _is_string_like(array: Any) -> bool:
    if isinstance(array, (str, bytes)):
        return True
    if isinstance(array, np.ndarray):
        if array.dtype.kind in "UST":
            return True
        if array.dtype.kind == "O":
            return array.size == 0 or isinstance(array.reshape(-1)[0], (str, bytes))
        return False
    if isinstance(array, (list, tuple)):
        while isinstance(array, (list, tuple)) and array:
            array = array[0]
        return isinstance(array, (str, bytes))
    return False


def _shape_of(proto: tensor_pb2.TensorProto) -> tuple[tuple[int, ...], int]:
    """The declared shape and its element count, as Python ints (so absurd
    sizes cannot overflow); refuses unknown or negative sizes and too many
    dimensions."""
    if proto.tensor_shape.unknown_rank:
        raise TensorCodecError("a tensor must have a known shape")
    dims = proto.tensor_shape.dim
    if len(dims) > MAX_RANK:
        raise TensorCodecError(f"a tensor may have at most {MAX_RANK} dimensions, got {len(dims)}")
    shape = tuple(int(d.size) for d in dims)
    if any(s < 0 for s in shape):
        raise TensorCodecError(f"a tensor must have a fully known shape, got {list(shape)}")
    count = span = 1
    for size in shape:
        count *= size
        span *= max(size, 1)
    # A zero-element tensor still gets an array of its shape, and numpy refuses a shape whose
    # sizes multiply (zeros aside) past what an index can address: [0, 1e9, 2e9] is no tensor.
    if span > MAX_SPAN:
        raise TensorCodecError(f"a tensor's dimensions multiply to more than 2**48, got {list(shape)}")
    return shape, count


def declared_shape(proto: tensor_pb2.TensorProto) -> tuple[tuple[int, ...], int]:
    """The tensor's declared shape and element count, checked as
    ``from_tensor_proto`` checks them, without decoding anything."""
    return _shape_of(proto)


def element_count(proto: tensor_pb2.TensorProto) -> int:
    """How many elements the tensor's declared shape holds (checked as
    ``from_tensor_proto`` checks it), without decoding anything."""
    return _shape_of(proto)[1]


def decoded_nbytes(proto: tensor_pb2.TensorProto, count: int | None = None) -> int:
    """The bytes the tensor's values take once decoded, without decoding them:
    elements × item size; for strings the length of every element (a single
    value that fills the tensor counts once per element). ``count``: its
    element_count, when the caller has it already."""
    if count is None:
        count = element_count(proto)
    if proto.dtype == _T.DT_STRING:
        values = proto.string_val
        if len(values) == 1:
            return len(values[0]) * count
        return sum(len(v) for v in values)
    np_dtype = _TYPES.get(proto.dtype, (None, None))[1]
    return count * (np_dtype.itemsize if np_dtype is not None else 0)


def _other_value_fields(proto: tensor_pb2.TensorProto, field: str) -> list[str]:
    return sorted(
        f.name
        for f, _ in proto.ListFields()
        if f.name.endswith("_val") and f.name != field
    )


def from_tensor_proto(
    proto: tensor_pb2.TensorProto, declared: tuple[tuple[int, ...], int] | None = None
) -> np.ndarray:
    """Decode a TensorProto into a numpy array (strings as an object array of
    bytes). The declared shape must match the values: see the module's doc.
    ``declared``: what ``declared_shape(proto)`` returned, when the caller
    has it already."""
    shape, count = _shape_of(proto) if declared is None else declared
    dt = proto.dtype
    if dt not in _TYPES:
        raise TensorCodecError(f"tensors of type {dtype_name(dt)} are not supported")
    np_dtype = _TYPES[dt][1]
    assert np_dtype is not None

    if proto.tensor_content:
        if dt == _T.DT_STRING:
            raise TensorCodecError("string tensors must use string_val, not tensor_content")
        wire = np_dtype.newbyteorder("<")
        if len(proto.tensor_content) != count * wire.itemsize:
            raise TensorCodecError(
                f"tensor_content holds {len(proto.tensor_content)} bytes, "
                f"shape {list(shape)} of {dtype_name(dt)} needs {count * wire.itemsize}"
            )
        values = np.frombuffer(proto.tensor_content, dtype=wire)
        return values.astype(np_dtype).reshape(shape)

    field = _VAL_FIELD[dt]
    try:
        values = _typed_values(proto, dt, np_dtype)
    except (OverflowError, ValueError) as e:
        raise TensorCodecError(f"bad {field} for {dtype_name(dt)}: {e}") from e
    if values.size == count:
        return values.reshape(shape)
    if values.size > count:
        raise TensorCodecError(
            f"{field} holds {values.size} values, shape {list(shape)} has {count}"
        )
    if values.size == 0:
        others = _other_value_fields(proto, field)
        hint = (
            f" ({', '.join(others)} cannot carry {dtype_name(dt)} values)" if others else ""
        )
        raise TensorCodecError(
            f"shape {list(shape)} has {count} elements but the tensor carries no "
            f"{dtype_name(dt)} values: send them in tensor_content or {field}{hint}"
        )
    if values.size != 1:
        raise TensorCodecError(
            f"{field} holds {values.size} values, shape {list(shape)} has {count}: "
            "send every value, or a single one to fill the tensor"
        )
    # One value fills the tensor, as tf.make_tensor_proto(1.0, shape=[3]) sends.
    try:
        filled = np.empty(count, dtype=np_dtype)
    except (MemoryError, ValueError) as e:
        raise TensorCodecError(
            f"cannot fill shape {list(shape)} of {dtype_name(dt)} ({count} elements): {e}"
        ) from None
    filled[:] = values[0]
    return filled.reshape(shape)


def _typed_values(proto: tensor_pb2.TensorProto, dt: int, np_dtype: np.dtype) -> np.ndarray:
    field = _VAL_FIELD[dt]
    raw = getattr(proto, field)
    if dt == _T.DT_STRING:
        values = np.empty(len(raw), dtype=object)
        values[:] = list(raw)
        return values
    if dt == _T.DT_HALF:
        return np.asarray(raw, dtype=np.int32).astype(np.uint16).view(np.float16)
    if dt in (_T.DT_COMPLEX64, _T.DT_COMPLEX128):
        parts = np.asarray(raw, dtype=np.float32 if dt == _T.DT_COMPLEX64 else np.float64)
        if parts.size % 2:
            raise TensorCodecError(f"{field} must hold (real, imaginary) pairs")
        return parts.view(np_dtype)
    return np.asarray(raw, dtype=np_dtype)
