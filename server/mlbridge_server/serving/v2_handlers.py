"""The Open Inference Protocol's calls (KServe v2 gRPC) on messages, apart from gRPC.

They share the TF Serving side's core: models resolve through the same
registry (``registry.resolve``; a version is a whole number in a string, ""
the latest), inputs are held to the same caps (limits.RequestLimits, counted
from shapes and lengths before anything is decoded) and checked against the
signature with the same rules (handlers.check_names / check_shapes), and every
ModelInfer runs the signature through ``Handlers.run``.

Decisions where the protocol leaves room:

- Which signature: the request parameter ``signature_name`` (a string),
  ``serving_default`` when absent. ModelMetadata describes ``serving_default``
  (or, for a model without one, its first signature by name).
- Inputs as typed contents or as ``raw_input_contents``, never both in one
  request; outputs are always answered as ``raw_output_contents``, the way
  Triton answers (tritonclient's ``as_numpy`` reads them).
- ModelReady answers ready=false, not an error, for a model or version the
  server does not have (as Triton does), and only true for a version that is
  loaded now; a version that is not a whole number is INVALID_ARGUMENT.
- ModelMetadata's ``platform`` is "tensorflow_savedmodel", Triton's name for
  the same kind of model; its ``versions`` are those a request may name now.
  A dimension of unknown size is -1; an input of unknown rank is shown with
  shape [-1] (the protocol cannot say "any rank").
- A signature dtype without a v2 datatype (complex, quantized) is shown in
  upper case ("COMPLEX64") and cannot be sent over this protocol.
- RepositoryIndex (the model repository extension, which Triton and MLServer
  also serve) lists every version with state READY, LOADING, UNAVAILABLE
  (on disk, loaded on first use) or FAILED, and its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

import mlbridge
from mlbridge import v2_tensors
from mlbridge.tensors import TensorCodecError, dtype_name
from mlbridge.wire import meta_graph_pb2
from mlbridge.wire import open_inference_pb2 as pb

from .errors import failed_precondition, invalid
from .handlers import (
    DEFAULT_SIGNATURE,
    INIT_OP_SIGNATURE,
    Handlers,
    InputSpec,
    _describe,
    _signature,
    check_names,
    check_shapes,
)

log = logging.getLogger(__name__)

SERVER_NAME = "mlbridge"
PLATFORM = "tensorflow_savedmodel"
SIGNATURE_PARAMETER = "signature_name"

# Registry states -> the repository index's words (Triton's).
_INDEX_STATES = {
    "AVAILABLE": "READY",
    "LOADING": "LOADING",
    "FAILED": "FAILED",
    "UNLOADED": "UNAVAILABLE",
}


def parse_version(text: str, what: str = "model_version") -> int | None:
    """A v2 version string as the registry's version: None for "" (the latest)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise invalid(f'{what} "{shown}" must be a whole number, or empty for the latest version')
    return int(text)


def _datatype(data_type: int) -> str:
    name = dtype_name(data_type)
    return v2_tensors.datatype_for(name) or name.upper()


def _shape(info: meta_graph_pb2.TensorInfo) -> list[int]:
    if info.tensor_shape.unknown_rank:
        return [-1]
    return [d.size if d.size >= 0 else -1 for d in info.tensor_shape.dim]


def _default_signature(servable: Any) -> str | None:
    signatures = servable.signature_defs.signature_def
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    others = sorted(k for k in signatures if k != INIT_OP_SIGNATURE)
    return others[0] if others else None


def _signature_name(request: pb.ModelInferRequest) -> str:
    if SIGNATURE_PARAMETER not in request.parameters:
        return DEFAULT_SIGNATURE
    param = request.parameters[SIGNATURE_PARAMETER]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise invalid(f'parameter "{SIGNATURE_PARAMETER}" must be a string (string_param)')
    return param.string_param or DEFAULT_SIGNATURE


class V2Handlers:
    """ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
    ModelInfer and RepositoryIndex over the TF Serving side's Handlers."""

    def __init__(self, handlers: Handlers):
        self.handlers = handlers
        self.registry = handlers.registry

    def server_live(self, _request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, _request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.registry.first_scan_done.is_set())

    def server_metadata(self, _request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=mlbridge.__version__)

    def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        if not request.name:
            raise invalid("name is required: the model to ask about")
        version = parse_version(request.version, "version")
        for status in self.registry.statuses(request.name):
            if status.name != request.name or status.state != "AVAILABLE":
                continue
            if (version is None and status.latest) or status.version == version:
                return pb.ModelReadyResponse(ready=True)
        return pb.ModelReadyResponse(ready=False)

    def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        if not request.name:
            raise invalid("name is required: the model to describe")
        servable = self.registry.resolve(request.name, parse_version(request.version, "version"))
        response = pb.ModelMetadataResponse(name=servable.name, platform=PLATFORM)
        versions = {servable.version}
        for status in self.registry.statuses(servable.name):
            if status.name == servable.name and status.served and status.state in ("AVAILABLE", "UNLOADED"):
                versions.add(status.version)
        response.versions.extend(str(v) for v in sorted(versions))
        chosen = _default_signature(servable)
        if chosen is not None:
            signature = servable.signature_defs.signature_def[chosen]
            for target, infos in ((response.inputs, signature.inputs), (response.outputs, signature.outputs)):
                for key in sorted(infos):
                    target.add(name=key, datatype=_datatype(infos[key].dtype), shape=_shape(infos[key]))
        return response

    def repository_index(self, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
        if request.repository_name:
            raise invalid(
                f'repository "{request.repository_name[:100]}" not found: the server has one model '
                "base; leave repository_name empty"
            )
        response = pb.RepositoryIndexResponse()
        for status in self.registry.statuses():
            if not status.served:
                continue
            state = _INDEX_STATES.get(status.state, status.state)
            if request.ready and state != "READY":
                continue
            response.models.add(
                name=status.name, version=str(status.version), state=state, reason=status.error
            )
        return response

    # -- ModelInfer ------------------------------------------------------------------------

    def model_infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        if not request.model_name:
            raise invalid("model_name is required")
        version = parse_version(request.model_version)
        servable = self.registry.resolve(request.model_name, version)
        signature_name = _signature_name(request)
        signature = _signature(servable, signature_name)
        where = _describe(servable, signature_name)
        specs = self.handlers.input_specs(servable, signature_name)
        arrays = self._inputs(request, signature, where, specs)

        wanted = [o.name for o in request.outputs]
        unknown = [k for k in wanted if k not in signature.outputs]
        if unknown:
            outputs = ", ".join(sorted(signature.outputs))
            raise invalid(
                f"outputs names {', '.join(repr(k) for k in unknown)}, which {where} "
                f"does not have (outputs: {outputs})"
            )
        if len(set(wanted)) != len(wanted):
            raise invalid("outputs names an output more than once")

        results = self.handlers.run(servable, signature_name, arrays, where)

        response = pb.ModelInferResponse(
            model_name=servable.name, model_version=str(servable.version), id=request.id
        )
        for key in wanted or sorted(results):
            try:
                datatype, shape, raw = v2_tensors.encode_raw(np.asarray(results[key]))
            except TensorCodecError as e:
                raise failed_precondition(
                    f'output "{key}" of {where} cannot be sent over the Open Inference Protocol: '
                    f"{e} (call Predict, TF Serving's API)"
                ) from None
            response.outputs.add(name=key, datatype=datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response

    def _inputs(
        self,
        request: pb.ModelInferRequest,
        signature: meta_graph_pb2.SignatureDef,
        where: str,
        specs: Mapping[str, InputSpec],
    ) -> dict[str, np.ndarray]:
        """The request's inputs decoded, after the checks of the TF Serving side:
        names, datatypes, the size caps (before decoding), then shapes (``specs``:
        the signature's input specs)."""
        tensors = list(request.inputs)
        names = [t.name for t in tensors]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise invalid(f'input "{name[:100]}" is given more than once')
            seen.add(name)
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(tensors):
            raise invalid(
                f"raw_input_contents has {len(raw)} entries for {len(tensors)} inputs: send one "
                "per input, in the order of inputs, or use typed contents for all"
            )
        check_names(signature, seen, where)

        for tensor in tensors:
            info = signature.inputs[tensor.name]
            want = _datatype(info.dtype)
            if tensor.datatype != want:
                got = tensor.datatype[:40] or "no datatype"
                raise invalid(f'input "{tensor.name}" must be {want}, got {got} ({where})')
            if v2_tensors.datatype_for(dtype_name(info.dtype)) is None:
                raise invalid(
                    f'input "{tensor.name}" is {dtype_name(info.dtype)}, which the Open Inference '
                    f"Protocol has no datatype for: call Predict (TF Serving's API) ({where})"
                )

        sizes = []
        for i, tensor in enumerate(tensors):
            try:
                count, nbytes = v2_tensors.tensor_size(tensor, raw[i] if raw else None)
            except TensorCodecError as e:
                raise invalid(f'input "{tensor.name}": {e}') from None
            sizes.append((tensor.name, list(tensor.shape), count, nbytes))
        self.handlers.limits.check_sizes(sorted(sizes))

        arrays: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(tensors):
            try:
                arrays[tensor.name] = v2_tensors.decode(tensor, raw[i] if raw else None)
            except TensorCodecError as e:
                raise invalid(f'input "{tensor.name}": {e}') from None
        check_shapes(signature, arrays, where, specs)
        return arrays
