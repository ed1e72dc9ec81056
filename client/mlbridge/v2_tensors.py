"""numpy arrays <-> the Open Inference Protocol's tensors (KServe v2 gRPC).

A v2 tensor is a name, a datatype, a shape and its values, either in the
typed field of ``InferTensorContents`` that matches the datatype or as raw
bytes in the request's ``raw_input_contents`` (the response's
``raw_output_contents``), one entry per tensor in the order of the tensors.
Raw values are little-endian and row-major; a BYTES element in raw form is a
4-byte little-endian length followed by that many bytes. tritonclient sends
raw contents and reads raw contents back, as Triton answers; other clients
send typed contents. Both are read here, and both can be written.

The declared shape must match the values exactly (the protocol says so, and
no value fills a tensor the way a single TF Serving value does):

- raw numeric contents hold exactly N x item size bytes, N being the shape's
  element count; raw BYTES hold exactly N length-prefixed elements, nothing
  after them;
- typed contents hold exactly N values, in the field of the datatype and in
  no other (FP16 has no typed field: it travels raw only);
- INT8, INT16, UINT8 and UINT16 arrive in 32-bit fields, and a value out of
  the datatype's range is refused rather than wrapped around.

``tensor_size`` measures a tensor (elements, decoded bytes) from its shape and
lengths without decoding, for callers that cap request sizes. Errors are
:class:`TensorCodecError` (from mlbridge.tensors) with a message that says what
to fix; callers add the tensor's name.

The datatypes map to the dtype names of mlbridge.tensors ("float32",
"string", ...): BOOL bool, UINT8..UINT64 uint8..uint64, INT8..INT64
int8..int64, FP16 float16, FP32 float32, FP64 float64, BYTES string (str
values are sent as UTF-8; BYTES values decode to ``bytes`` in an object
array, as TensorFlow's strings do).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mlbridge.tensors import MAX_RANK, MAX_SPAN, TensorCodecError, encode_strings
from mlbridge.wire import open_inference_pb2

__all__ = [
    "DATATYPES",
    "TensorCodecError",
    "check_shape",
    "datatype_for",
    "decode",
    "dtype_name_for",
    "encode_contents",
    "encode_raw",
    "pack_bytes",
    "tensor_size",
    "unpack_bytes",
]

Contents = open_inference_pb2.InferTensorContents

# v2 datatype -> (dtype name of mlbridge.tensors, numpy dtype as it travels, contents field).
_SPEC: dict[str, tuple[str, np.dtype, str | None]] = {
    "BOOL": ("bool", np.dtype("?"), "bool_contents"),
    "UINT8": ("uint8", np.dtype("<u1"), "uint_contents"),
    "UINT16": ("uint16", np.dtype("<u2"), "uint_contents"),
    "UINT32": ("uint32", np.dtype("<u4"), "uint_contents"),
    "UINT64": ("uint64", np.dtype("<u8"), "uint64_contents"),
    "INT8": ("int8", np.dtype("<i1"), "int_contents"),
    "INT16": ("int16", np.dtype("<i2"), "int_contents"),
    "INT32": ("int32", np.dtype("<i4"), "int_contents"),
    "INT64": ("int64", np.dtype("<i8"), "int64_contents"),
    "FP16": ("float16", np.dtype("<f2"), None),
    "FP32": ("float32", np.dtype("<f4"), "fp32_contents"),
    "FP64": ("float64", np.dtype("<f8"), "fp64_contents"),
    "BYTES": ("string", np.dtype(object), "bytes_contents"),
}

# The v2 datatypes, in the order the protocol lists them.
DATATYPES: tuple[str, ...] = tuple(_SPEC)

_BY_DTYPE_NAME = {name: datatype for datatype, (name, _, _) in _SPEC.items()}
_CONTENT_FIELDS = tuple(sorted({f for _, _, f in _SPEC.values() if f}))
_LENGTH = struct.Struct("<I")


def datatype_for(dtype_name: str) -> str | None:
    """The v2 datatype of a dtype name ("float32" -> "FP32", "string" ->
    "BYTES"); None for one the protocol has no datatype for (complex, ...)."""
    return _BY_DTYPE_NAME.get(dtype_name)


def dtype_name_for(datatype: str) -> str:
    """The dtype name of a v2 datatype ("FP32" -> "float32")."""
    spec = _SPEC.get(datatype)
    if spec is None:
        raise TensorCodecError(_unknown_datatype(datatype))
    return spec[0]


def _unknown_datatype(datatype: str) -> str:
    shown = datatype[:40] + ("..." if len(datatype) > 40 else "")
    return f'datatype "{shown}" is not one of {", ".join(DATATYPES)}'


def _spec(datatype: str) -> tuple[str, np.dtype, str | None]:
    spec = _SPEC.get(datatype)
    if spec is None:
        raise TensorCodecError(_unknown_datatype(datatype))
    return spec


def check_shape(shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """The shape as a tuple and its element count; refuses negative sizes, more
    than MAX_RANK dimensions and sizes that multiply (zeros aside) past 2**48."""
    if len(shape) > MAX_RANK:
        raise TensorCodecError(f"a tensor may have at most {MAX_RANK} dimensions, got {len(shape)}")
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise TensorCodecError(f"a tensor's shape must have no negative size, got {list(dims)}")
    count = span = 1
    for size in dims:
        count *= size
        span *= max(size, 1)
    if span > MAX_SPAN:
        raise TensorCodecError(f"a tensor's dimensions multiply to more than 2**48, got {list(dims)}")
    return dims, count


def _set_fields(contents: Contents) -> list[str]:
    return [f for f in _CONTENT_FIELDS if len(getattr(contents, f))]


def tensor_size(tensor: Any, raw: bytes | None = None) -> tuple[int, int]:
    """(elements, decoded bytes) of a v2 tensor (anything with ``datatype``,
    ``shape`` and ``contents``), from its shape and the lengths of its values,
    without decoding them. Numeric tensors count elements x item size; BYTES
    the bytes of every element (raw: the raw length less the length prefixes)."""
    _name, dtype, field = _spec(tensor.datatype)
    _dims, count = check_shape(tensor.shape)
    if tensor.datatype != "BYTES":
        return count, count * dtype.itemsize
    if raw is not None:
        return count, max(0, len(raw) - _LENGTH.size * count)
    return count, sum(len(v) for v in getattr(tensor.contents, field))


def unpack_bytes(raw: bytes, count: int) -> list[bytes]:
    """The ``count`` elements of raw BYTES contents (each a 4-byte
    little-endian length, then the bytes); refuses contents that end early or
    go on after the last element."""
    view = memoryview(raw)
    out: list[bytes] = []
    at = 0
    for i in range(count):
        if at + _LENGTH.size > len(view):
            raise TensorCodecError(
                f"raw BYTES contents end at element {i} of {count}: each element is a 4-byte "
                "little-endian length followed by that many bytes"
            )
        (length,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        if at + length > len(view):
            raise TensorCodecError(
                f"raw BYTES element {i} declares {length} bytes but only {len(view) - at} remain"
            )
        out.append(bytes(view[at:at + length]))
        at += length
    if at != len(view):
        raise TensorCodecError(
            f"raw BYTES contents hold {len(view) - at} bytes after the {count} elements the shape "
            "declares: the shape and the contents disagree"
        )
    return out


def pack_bytes(items: Iterable[bytes]) -> bytes:
    """Raw BYTES contents: each element as a 4-byte little-endian length and its bytes."""
    parts = []
    for item in items:
        parts.append(_LENGTH.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def decode(tensor: Any, raw: bytes | None = None) -> np.ndarray:
    """The numpy array of a v2 tensor: ``raw`` when given (the entry of
    raw_input_contents / raw_output_contents for it), else its typed contents.
    BYTES become an object array of ``bytes``."""
    datatype = tensor.datatype
    _name, dtype, field = _spec(datatype)
    dims, count = check_shape(tensor.shape)
    has_contents = tensor.HasField("contents")
    if raw is not None:
        if has_contents and _set_fields(tensor.contents):
            raise TensorCodecError(
                "has both typed contents and raw contents: send one or the other"
            )
        if datatype == "BYTES":
            array = np.empty(count, dtype=object)
            array[:] = unpack_bytes(raw, count)
            return array.reshape(dims)
        need = count * dtype.itemsize
        if len(raw) != need:
            raise TensorCodecError(
                f"raw contents hold {len(raw)} bytes, but shape {list(dims)} of {datatype} takes "
                f"{need} ({count} elements of {dtype.itemsize} bytes): the shape and the "
                "contents disagree"
            )
        array = np.frombuffer(raw, dtype=dtype)
        if datatype == "BOOL" and count and np.frombuffer(raw, dtype=np.uint8).max() > 1:
            raise TensorCodecError("raw BOOL contents must hold one byte per element, 0 or 1")
        return array.reshape(dims)

    given = _set_fields(tensor.contents) if has_contents else []
    if field is None:
        raise TensorCodecError(
            f"{datatype} values travel only as raw contents (raw_input_contents): the protocol "
            "has no typed field for them"
        )
    wrong = [f for f in given if f != field]
    if wrong:
        raise TensorCodecError(
            f"{datatype} values go in contents.{field}, got {', '.join(wrong)}"
        )
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise TensorCodecError(
            f"contents.{field} holds {len(values)} values, but shape {list(dims)} takes {count}: "
            "the shape and the contents disagree"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(dims)
    wide = np.asarray(values, dtype=_WIDE.get(datatype, dtype))
    if datatype in _WIDE:
        info = np.iinfo(dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            bad = wide[(wide < info.min) | (wide > info.max)][0]
            raise TensorCodecError(
                f"value {int(bad)} is out of the range of {datatype} ({info.min} to {info.max})"
            )
    return wide.astype(dtype.newbyteorder("="), copy=False).reshape(dims)


# Datatypes carried in a wider typed field: checked for range before narrowing.
_WIDE = {
    "INT8": np.dtype(np.int32),
    "INT16": np.dtype(np.int32),
    "UINT8": np.dtype(np.uint32),
    "UINT16": np.dtype(np.uint32),
}


def _as_array(value: Any, datatype: str | None) -> tuple[np.ndarray, str]:
    if datatype is not None:
        _name, dtype, _field = _spec(datatype)
        if datatype == "BYTES":
            return np.asarray(value, dtype=object), datatype
        try:
            return np.asarray(value, dtype=dtype.newbyteorder("=")), datatype
        except (TypeError, ValueError) as e:
            raise TensorCodecError(f"cannot convert to {datatype}: {e}") from e
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        return np.asarray(array, dtype=object), "BYTES"
    found = _BY_DTYPE_NAME.get(array.dtype.name)
    if found is None:
        raise TensorCodecError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")
    return array, found


def encode_raw(value: Any, datatype: str | None = None) -> tuple[str, list[int], bytes]:
    """(datatype, shape, raw bytes) of an array; ``datatype`` converts it first,
    else the array's dtype decides (str, bytes and object arrays are BYTES)."""
    array, datatype = _as_array(value, datatype)
    if datatype == "BYTES":
        return datatype, list(array.shape), pack_bytes(encode_strings(array, "BYTES"))
    dtype = _SPEC[datatype][1]
    return datatype, list(array.shape), np.ascontiguousarray(array, dtype=dtype).tobytes()


def encode_contents(value: Any, datatype: str | None = None) -> tuple[str, list[int], Contents]:
    """(datatype, shape, typed contents) of an array; FP16 cannot be typed."""
    array, datatype = _as_array(value, datatype)
    field = _SPEC[datatype][2]
    if field is None:
        raise TensorCodecError(f"{datatype} has no typed contents field: send it raw (encode_raw)")
    contents = Contents()
    flat = array.reshape(-1)
    if datatype == "BYTES":
        getattr(contents, field).extend(encode_strings(array, "BYTES"))
    else:
        getattr(contents, field).extend(flat.tolist())
    return datatype, list(array.shape), contents
