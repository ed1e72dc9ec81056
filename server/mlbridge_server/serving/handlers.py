"""Predict, GetModelMetadata and ListModels on messages, apart from gRPC.

Requests are checked the way TF Serving checks them, with messages that name
the input, the expected and the received dtype or shape. An error TensorFlow
raises while running a signature answers INVALID_ARGUMENT with the line of its
message that states the cause.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlbridge.serving_constants import (
    DEFAULT_SIGNATURE,
    INIT_OP_SIGNATURE,
    SIGNATURE_DEF_FIELD,
    SIGNATURE_DEF_TYPE_URL,
)
from mlbridge.tensors import TensorCodecError, dtype_name, from_tensor_proto, write_tensor_proto
from mlbridge.wire import (
    get_model_metadata_pb2,
    meta_graph_pb2,
    model_catalog_pb2,
    model_pb2,
    predict_pb2,
    tensor_pb2,
)

from . import call_context
from .batching import Batcher, BatchingSettings
from .errors import RequestError, failed_precondition, invalid
from .limits import RequestLimits
from .registry import ModelRegistry

log = logging.getLogger(__name__)


_STATES = model_catalog_pb2.ModelVersionStatus.State


def requested_version(registry: ModelRegistry, spec: model_pb2.ModelSpec) -> int | None:
    """The version a ModelSpec names: its number, the version its label has
    in the model config (NOT_FOUND for an unknown label), or None (the newest)."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        if not spec.name:
            raise invalid("model_spec.name is required")
        return registry.version_for_label(spec.name, spec.version_label)
    if choice == "version":
        return int(spec.version.value)
    return None


def _describe(servable: Any, signature_name: str) -> str:
    return f'signature "{signature_name}" of model "{servable.name}" version {servable.version}'


def _signature(servable: Any, signature_name: str) -> meta_graph_pb2.SignatureDef:
    signatures = servable.signature_defs.signature_def
    if signature_name == INIT_OP_SIGNATURE or signature_name not in signatures:
        names = ", ".join(sorted(k for k in signatures if k != INIT_OP_SIGNATURE)) or "none"
        raise failed_precondition(
            f'model "{servable.name}" version {servable.version} has no signature '
            f'"{signature_name}" (signatures: {names})'
        )
    return signatures[signature_name]


def _shape_text(dims: Any) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


@dataclass(frozen=True)
class InputSpec:
    """What a signature declares of one input, read once rather than from the
    SignatureDef message at every request."""

    dtype: int
    # Each dimension's size (-1: any), or None when the rank is unknown.
    dims: tuple[int, ...] | None
    # The leading dimension is free (or the rank unknown): inputs' batch sizes must agree.
    batched: bool


def input_specs(signature: meta_graph_pb2.SignatureDef) -> dict[str, InputSpec]:
    specs = {}
    for key, info in signature.inputs.items():
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else tuple(int(d.size) for d in shape.dim)
        specs[key] = InputSpec(info.dtype, dims, dims is None or (len(dims) > 0 and dims[0] < 0))
    return specs


def check_names(signature: meta_graph_pb2.SignatureDef, given: set[str], where: str) -> None:
    """INVALID_ARGUMENT unless the request's input names are the signature's."""
    expected = set(signature.inputs)
    if expected == given:
        return
    problems = []
    if expected - given:
        problems.append("missing input " + ", ".join(f'"{k}"' for k in sorted(expected - given)))
    if given - expected:
        unknown = sorted(given - expected)
        shown = [f'"{k[:100]}"' + ("..." if len(k) > 100 else "") for k in unknown[:10]]
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        problems.append("unknown input " + ", ".join(shown) + more)
    takes = ", ".join(sorted(expected)) or "no inputs"
    raise invalid(f"{'; '.join(problems)}: {where} takes {takes}")


def check_shapes(
    signature: meta_graph_pb2.SignatureDef,
    arrays: Mapping[str, np.ndarray],
    where: str,
    specs: Mapping[str, InputSpec] | None = None,
) -> None:
    """INVALID_ARGUMENT unless every decoded input has a shape its signature
    accepts and the inputs agree on the batch size. ``specs``: the
    signature's input_specs, when the caller has them."""
    if specs is None:
        specs = input_specs(signature)
    batch: tuple[str, int] | None = None
    for key in sorted(arrays):
        array = arrays[key]
        spec = specs[key]
        if spec.dims is not None:
            if array.ndim != len(spec.dims) or any(
                want >= 0 and want != got for want, got in zip(spec.dims, array.shape)
            ):
                raise invalid(
                    f'input "{key}" must have shape {_shape_text(spec.dims)} (-1: any size), '
                    f"got {list(array.shape)} ({where})"
                )
        if array.ndim >= 1 and spec.batched:
            if batch is None:
                batch = (key, array.shape[0])
            elif array.shape[0] != batch[1]:
                raise invalid(
                    f'inputs disagree on the batch size: "{batch[0]}" has {batch[1]} rows, '
                    f'"{key}" has {array.shape[0]}'
                )


def check_inputs(
    signature: meta_graph_pb2.SignatureDef,
    inputs: Mapping[str, tensor_pb2.TensorProto],
    where: str,
    limits: RequestLimits | None = None,
    specs: Mapping[str, InputSpec] | None = None,
) -> dict[str, np.ndarray]:
    """Decode the request's inputs after checking them against the signature:
    the same names, each with the signature's dtype and a compatible shape,
    and one batch size for all; together within ``limits`` (checked before
    anything is decoded). Raises INVALID_ARGUMENT naming the problem.
    ``specs``: the signature's input_specs, when the caller has them."""
    if specs is None:
        specs = input_specs(signature)
    keys = sorted(inputs)
    if len(keys) != len(specs) or any(key not in specs for key in keys):
        check_names(signature, set(keys), where)
    protos = [inputs[key] for key in keys]
    for key, proto in zip(keys, protos):
        if proto.dtype != specs[key].dtype:
            raise invalid(
                f'input "{key}" must be {dtype_name(specs[key].dtype)}, '
                f"got {dtype_name(proto.dtype)} ({where})"
            )
    # Each shape is read once: measured and held to the caps, then used to decode.
    measured = (limits or RequestLimits()).check(inputs)

    arrays: dict[str, np.ndarray] = {}
    for (key, shape, count, _), proto in zip(measured, protos):
        try:
            arrays[key] = from_tensor_proto(proto, (shape, count))
        except TensorCodecError as e:
            raise invalid(f'input "{key}": {e}') from None
    check_shapes(signature, arrays, where, specs)
    return arrays


# Lines of a TensorFlow error message that frame the cause rather than state it.
_TF_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "File ", "[[")
_TF_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\].*$")


def error_summary(error: BaseException) -> str:
    """The line of a TensorFlow error that says what went wrong.

    Errors from a signature start with "Graph execution error:" and where in
    the graph it happened; the op's own message comes after."""
    text = str(getattr(error, "message", None) or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(_TF_NOISE):
            return _TF_OP_SUFFIX.sub("", line) or line
    return lines[0] if lines else type(error).__name__


class Handlers:
    """The three calls of the server, on protobuf messages."""

    def __init__(
        self,
        registry: ModelRegistry,
        limits: RequestLimits | None = None,
        batching: BatchingSettings | None = None,
        recorder: Any = None,
    ):
        self.registry = registry
        # The caps on a request's size: $MLBRIDGE_SERVING_MAX_REQUEST_* (limits.py).
        self.limits = RequestLimits.from_env() if limits is None else limits
        # Dynamic batching, on by default (the server passes its settings'
        # batching fields). ``recorder`` gets batch sizes and queue delays
        # when it has observe_batch and observe_queue_delay.
        self.batcher = Batcher(BatchingSettings() if batching is None else batching, recorder)
        # Each loaded version's signatures as InputSpecs, read once; gone with the version.
        self._specs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._specs_lock = threading.Lock()

    def input_specs(self, servable: Any, signature_name: str) -> dict[str, InputSpec]:
        """The input_specs of a signature of a loaded version, read once per version."""
        try:
            return self._specs[servable][signature_name]
        except KeyError:
            pass
        except TypeError:  # a servable that cannot be weakly referenced or hashed: not kept
            return input_specs(servable.signature_defs.signature_def[signature_name])
        specs = input_specs(servable.signature_defs.signature_def[signature_name])
        with self._specs_lock:
            self._specs.setdefault(servable, {})[signature_name] = specs
        return specs

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        servable = self.registry.resolve(spec.name, requested_version(self.registry, spec))
        call_context.resolved(servable)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = _signature(servable, signature_name)
        where = _describe(servable, signature_name)
        arrays = check_inputs(
            signature, request.inputs, where, self.limits, self.input_specs(servable, signature_name)
        )

        wanted = list(request.output_filter)
        unknown = [k for k in wanted if k not in signature.outputs]
        if unknown:
            outputs = ", ".join(sorted(signature.outputs))
            raise invalid(
                f"output_filter names {', '.join(repr(k) for k in unknown)}, which {where} "
                f"does not have (outputs: {outputs})"
            )

        results = self.run(servable, signature_name, arrays, where)

        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for key in wanted or sorted(results):
            value = results[key]
            info = signature.outputs.get(key)
            dtype = info.dtype if info is not None and info.dtype else None
            write_tensor_proto(response.outputs[key], value, dtype)
        return response

    def run(
        self, servable: Any, signature_name: str, arrays: dict[str, np.ndarray], where: str
    ) -> dict[str, np.ndarray]:
        """Run a signature on inputs already checked against it: the one call
        every protocol's predict goes through. Concurrent calls may run as one
        batch (batching.py); each still gets its own outputs, or its own error.
        An error TensorFlow raises on these inputs answers INVALID_ARGUMENT
        naming ``where``; a full batch queue answers RESOURCE_EXHAUSTED."""
        call_context.resolved(servable)  # the metrics' version label, whichever protocol asked
        try:
            return self.batcher.run(servable, signature_name, arrays)
        except RequestError:
            raise
        except Exception as e:  # a TensorFlow error on these inputs
            log.debug("%s failed: %s", where, e)
            raise invalid(f"{where} failed: {error_summary(e)}") from None

    def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        fields = list(request.metadata_field)
        if not fields:
            raise invalid('GetModelMetadataRequest must name metadata_field "signature_def"')
        for name in fields:
            if name != SIGNATURE_DEF_FIELD:
                raise invalid(
                    f'metadata field "{name}" is not supported: the only one is "signature_def"'
                )
        spec = request.model_spec
        servable = self.registry.resolve(spec.name, requested_version(self.registry, spec))
        call_context.resolved(servable)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        packed = response.metadata[SIGNATURE_DEF_FIELD]
        packed.type_url = SIGNATURE_DEF_TYPE_URL
        packed.value = servable.signature_defs.SerializeToString(deterministic=True)
        return response

    def list_models(
        self, request: model_catalog_pb2.ListModelsRequest
    ) -> model_catalog_pb2.ListModelsResponse:
        response = model_catalog_pb2.ListModelsResponse()
        for status in self.registry.statuses(request.name):
            if not status.served:
                # Not in its model's version policy: a request for it would get
                # NOT_FOUND, so the bridge must not offer it to SQL callers.
                continue
            item = response.models.add(
                name=status.name,
                version=status.version,
                state=_STATES.Value(status.state),
                error=status.error,
                latest=status.latest,
            )
            if status.signature_defs is None:
                continue
            signatures = status.signature_defs.signature_def
            chosen = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else None
            if chosen is None:
                others = sorted(k for k in signatures if k != INIT_OP_SIGNATURE)
                chosen = others[0] if others else None
            if chosen is None:
                continue
            item.signature_name = chosen
            for target, infos in ((item.inputs, signatures[chosen].inputs),
                                  (item.outputs, signatures[chosen].outputs)):
                for key in sorted(infos):
                    target.add(name=key, dtype=infos[key].dtype, shape=infos[key].tensor_shape)
        return response
