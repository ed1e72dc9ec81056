"""A light gRPC client for servers of the Open Inference Protocol (KServe v2 gRPC).

It has the interface of :class:`mlbridge.serving_client.ModelServerClient` that
the bridge uses (``predict``, ``metadata``, ``list_models``, ``health``,
``close``), the same TLS and bearer-token options, and the same errors, so a
bridge started with ``--protocol v2`` drives Triton, MLServer, KServe or
``mlbridge serve`` alike. No TensorFlow here.

How TF Serving's notions map onto the protocol:

- Versions are whole numbers in strings. A model a v2 server lists without a
  version (MLServer's models without ``version`` in their settings) is
  version 0 here, sent as "" (the server's choice); one whose version is not
  a whole number is left out of ``list_models`` with a warning, since the
  catalog numbers versions.
- ``list_models`` reads the model repository extension's RepositoryIndex
  (Triton, MLServer and ``mlbridge serve`` serve it on GRPCInferenceService),
  then ModelMetadata of every READY model for its inputs and outputs.
- A v2 model has one set of inputs and outputs: ``metadata`` describes it as
  the signature asked for. ``predict`` with a signature other than
  serving_default sends it as the request parameter ``signature_name``,
  which ``mlbridge serve`` reads (other servers ignore or refuse it).
- Inputs are sent as ``raw_input_contents`` (as tritonclient sends them);
  outputs are read from ``raw_output_contents`` or typed contents, whichever
  the server answers with (Triton: raw, MLServer: typed).
- The bridge sends one value per row, a vector. A model whose metadata says
  an input takes [-1, 1] (a Triton model with ``max_batch_size`` and
  ``dims: [1]``) gets it as a column: once ``metadata`` has described a model
  version, ``predict`` reshapes vectors to the shape it declared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import numpy as np

from mlbridge import v2_tensors
from mlbridge.serving_client import (
    DEFAULT_SIGNATURE,
    ClientSecurity,
    GrpcClient,
    InvalidRequest,
    ModelVersion,
    ServingError,
    Signature,
    TensorSpec,
)
from mlbridge.tensors import TensorCodecError
from mlbridge.wire import open_inference_pb2 as pb
from mlbridge.wire import open_inference_service_pb2_grpc

__all__ = ["InferenceClient", "UNVERSIONED"]

log = logging.getLogger("mlbridge")

# The catalog's version for a model a v2 server lists without one; sent as "".
UNVERSIONED = 0
SIGNATURE_PARAMETER = "signature_name"

# RepositoryIndex states (Triton's and MLServer's words) -> ModelVersion states.
_STATES = {"READY": "AVAILABLE", "LOADING": "LOADING", "FAILED": "FAILED"}


def _wire_version(version: int | None) -> str:
    return "" if version is None or version == UNVERSIONED else str(int(version))


def _version_number(text: str) -> int | None:
    text = text.strip()
    if not text:
        return UNVERSIONED
    return int(text) if text.isdigit() else None


def _spec(meta: pb.ModelMetadataResponse.TensorMetadata) -> TensorSpec:
    try:
        dtype = v2_tensors.dtype_name_for(meta.datatype)
    except TensorCodecError:
        dtype = meta.datatype.lower()
    return TensorSpec(name=meta.name, dtype=dtype, shape=tuple(None if d < 0 else int(d) for d in meta.shape))


class InferenceClient(GrpcClient):
    """A channel to one Open Inference Protocol server (see GrpcClient)."""

    protocol = "v2"

    def __init__(self, target: str, timeout: float = 30.0, security: ClientSecurity | None = None):
        super().__init__(target, timeout, security)
        self._stub = open_inference_service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        # (model, version) -> {input: declared shape}, from metadata(): for column inputs.
        self._shapes: dict[tuple[str, int | None], dict[str, tuple[int | None, ...] | None]] = {}

    def _rpc(self, method: str, request: Any, timeout: float | None) -> Any:
        return self._call(method, getattr(self._stub, method), request, timeout)

    def predict(
        self,
        name: str,
        version: int | None,
        inputs: Mapping[str, Any],
        output_filter: Iterable[str] | None = None,
        signature: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run model ``name`` (``version``, or the server's choice when None) on a batch:
        ``inputs`` maps each input name to an array. Returns every output, or those in
        ``output_filter``."""
        request = pb.ModelInferRequest(model_name=name, model_version=_wire_version(version))
        if signature and signature != DEFAULT_SIGNATURE:
            request.parameters[SIGNATURE_PARAMETER].string_param = signature
        declared = self._shapes.get((name, version), {})
        for key, value in inputs.items():
            want = declared.get(key)
            if want == (None, 1) and np.ndim(value) == 1:
                value = np.asarray(value).reshape(-1, 1)
            try:
                datatype, shape, raw = v2_tensors.encode_raw(value)
            except TensorCodecError as e:
                raise InvalidRequest(grpc.StatusCode.INVALID_ARGUMENT, f'input "{key}": {e}', "ModelInfer") from None
            request.inputs.add(name=key, datatype=datatype, shape=shape)
            request.raw_input_contents.append(raw)
        for key in output_filter or ():
            request.outputs.add(name=key)
        response = self._rpc("ModelInfer", request, timeout)
        raw_outputs = list(response.raw_output_contents)
        out = {}
        for i, tensor in enumerate(response.outputs):
            try:
                out[tensor.name] = v2_tensors.decode(tensor, raw_outputs[i] if i < len(raw_outputs) else None)
            except TensorCodecError as e:
                raise ServingError(grpc.StatusCode.INTERNAL, f'output "{tensor.name}": {e}', "ModelInfer") from None
        return out

    def metadata(
        self,
        name: str,
        version: int | None = None,
        signature: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> Signature:
        """The inputs and outputs of a model version (the server's choice when ``version`` is
        None), via ModelMetadata."""
        request = pb.ModelMetadataRequest(name=name, version=_wire_version(version))
        response = self._rpc("ModelMetadata", request, timeout)
        if version is None:
            numbers = [n for n in (_version_number(v) for v in response.versions) if n is not None]
            version = max(numbers) if numbers else UNVERSIONED
        described = Signature(
            model=response.name or name,
            version=int(version),
            name=signature,
            inputs=sorted((_spec(t) for t in response.inputs), key=lambda s: s.name),
            outputs=sorted((_spec(t) for t in response.outputs), key=lambda s: s.name),
        )
        if len(self._shapes) > 10_000:
            self._shapes.clear()
        self._shapes[(name, described.version)] = {s.name: s.shape for s in described.inputs}
        return described

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """"SERVING" when the server says it is ready (ServerReady), else "NOT_SERVING"."""
        response = self._rpc("ServerReady", pb.ServerReadyRequest(), timeout)
        return "SERVING" if response.ready else "NOT_SERVING"

    def list_models(self, name: str = "", timeout: float | None = None) -> list[ModelVersion]:
        """Every version of every model the server lists (only ``name``'s when given), with the
        inputs and outputs of the READY ones; ``latest`` marks the highest READY version."""
        response = self._rpc("RepositoryIndex", pb.RepositoryIndexRequest(), timeout)
        found: list[tuple[str, int, str, str]] = []
        for model in response.models:
            if name and model.name != name:
                continue
            number = _version_number(model.version)
            if number is None:
                log.warning("model %s version %r is not a whole number: left out of the catalog",
                            model.name, model.version)
                continue
            # MLServer 1.7 writes its enum's repr, "State.READY"; Triton and mlbridge "READY".
            state = _STATES.get(model.state.upper().rpartition(".")[2], "UNAVAILABLE")
            found.append((model.name, number, state, model.reason))
        latest: dict[str, int] = {}
        for model_name, number, state, _reason in found:
            if state == "AVAILABLE":
                latest[model_name] = max(number, latest.get(model_name, number))
        out = []
        for model_name, number, state, reason in sorted(set(found)):
            inputs: list[TensorSpec] = []
            outputs: list[TensorSpec] = []
            if state == "AVAILABLE":
                try:
                    described = self.metadata(model_name, number, timeout=timeout)
                except ServingError as e:
                    if e.transient:
                        raise
                    state, reason = "FAILED", e.details
                else:
                    inputs, outputs = described.inputs, described.outputs
            out.append(ModelVersion(
                name=model_name, version=number, state=state,
                error=reason if state == "FAILED" else "",
                latest=latest.get(model_name) == number,
                signature_name=DEFAULT_SIGNATURE, inputs=inputs, outputs=outputs,
            ))
        return out
