"""Caps on the size of a Predict request's inputs, checked before any input is
decoded, so that no request can make the server allocate much more than it
was sent, or more than it is willing to hold for one call.

The caps are per request, not per tensor: the elements (and decoded bytes)
of all the request's inputs are added up. A per-tensor cap would let a request
multiply the memory it costs by sending many inputs (a signature may take
dozens), and the cost that matters, the memory and time of one model run, is
that of the whole request.

- elements: ``MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS``, default 64 Mi
  (67,108,864: 256 MiB of float32);
- decoded bytes: ``MLBRIDGE_SERVING_MAX_REQUEST_BYTES``, default 256 MiB, the
  server's gRPC max message size (``mlbridge.serving_constants.MAX_MESSAGE_BYTES``). Numeric
  tensors count elements × item size; strings the bytes of every element.
  Decoding can grow a request past its size on the wire: a single value fills
  a whole tensor, and an int64_val of small numbers takes 1 byte a value on
  the wire but 8 decoded.

Both are read from the server's environment when it starts; a value that is
not a positive integer stops the start with a message naming it. A request
over a cap gets INVALID_ARGUMENT naming the input, the cap and the setting.
Requests over the gRPC max message size never reach this module: gRPC answers
them RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlbridge.errors import MlbridgeError
from mlbridge.serving_constants import MAX_MESSAGE_BYTES
from mlbridge.tensors import TensorCodecError, declared_shape, decoded_nbytes
from mlbridge.wire import tensor_pb2

from .errors import invalid

DEFAULT_MAX_ELEMENTS = 64 * 1024 * 1024
DEFAULT_MAX_BYTES = MAX_MESSAGE_BYTES
MAX_ELEMENTS_ENV = "MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS"
MAX_BYTES_ENV = "MLBRIDGE_SERVING_MAX_REQUEST_BYTES"


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip().replace("_", "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise MlbridgeError(f"{name}={environ[name]!r} must be a positive whole number")
    return value


@dataclass(frozen=True)
class RequestLimits:
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RequestLimits:
        env = os.environ if environ is None else environ
        return cls(
            max_elements=_positive(env, MAX_ELEMENTS_ENV, DEFAULT_MAX_ELEMENTS),
            max_bytes=_positive(env, MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
        )

    def check(
        self, inputs: Mapping[str, tensor_pb2.TensorProto]
    ) -> list[tuple[str, tuple[int, ...], int, int]]:
        """Raise INVALID_ARGUMENT when an input's shape is unusable or the
        inputs together go over a cap; reads shapes and lengths only. Returns
        what it measured, in name order: (name, declared shape, elements,
        decoded bytes), for decoding without reading the shapes again."""
        measured = []
        for key in sorted(inputs):
            proto = inputs[key]
            try:
                shape, count = declared_shape(proto)
                measured.append((key, shape, count, decoded_nbytes(proto, count)))
            except TensorCodecError as e:
                raise invalid(f'input "{key}": {e}') from None
        self.check_sizes((key, list(shape), count, size) for key, shape, count, size in measured)
        return measured

    def check_sizes(self, sizes: Iterable[tuple[str, list[int], int, int]]) -> None:
        """The caps on inputs already measured, each as (name, shape, elements,
        decoded bytes): what every protocol's request is held to."""
        elements = nbytes = 0
        for key, shape, count, size in sizes:
            elements += count
            nbytes += size
            if elements > self.max_elements:
                raise invalid(
                    f'input "{key}" (shape {shape}, {count} elements) takes the request to '
                    f"{elements} elements, over the cap of {self.max_elements} elements per "
                    f"request: send fewer rows per call, or raise {MAX_ELEMENTS_ENV} on the "
                    "model server"
                )
            if nbytes > self.max_bytes:
                raise invalid(
                    f'input "{key}" (shape {shape}, {size} bytes decoded) takes the request to '
                    f"{nbytes} bytes, over the cap of {self.max_bytes} bytes per request: "
                    f"send fewer rows per call, or raise {MAX_BYTES_ENV} on the model server"
                )
