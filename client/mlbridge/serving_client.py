"""A light gRPC client for the model server (TensorFlow Serving's API).

It talks to `mlbridge serve` and to a stock TensorFlow Serving alike
(``list_models`` needs our ModelCatalog extension; TF Serving answers it
UNIMPLEMENTED). No TensorFlow here: numpy, grpcio and the messages in
``mlbridge.wire``.

gRPC failures surface as :class:`ServingError`. ``error.transient`` tells the
ones worth retrying later without counting an attempt (the server is down,
restarting, overloaded or slow) from the ones that retrying will not fix (bad
input, unknown model): callers fail the rows for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import grpc
import numpy as np

from mlbridge.errors import MlbridgeError
from mlbridge.serving_constants import (
    DEFAULT_SIGNATURE,
    MAX_MESSAGE_BYTES,
    SIGNATURE_DEF_FIELD,
    message_size_options,
)
from mlbridge.serving_security import ClientSecurity
from mlbridge.tensors import (
    dtype_name,
    from_tensor_proto,
    numpy_dtype,
    shape_tuple,
    write_tensor_proto,
)
from mlbridge.wire import (
    get_model_metadata_pb2,
    meta_graph_pb2,
    model_catalog_pb2,
    model_catalog_pb2_grpc,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    tensor_pb2,
)

__all__ = [
    "DEFAULT_SIGNATURE",
    "MAX_MESSAGE_BYTES",
    "ClientSecurity",
    "InvalidRequest",
    "MessageTooLarge",
    "ModelNotFound",
    "ModelServerClient",
    "ModelVersion",
    "ServerUnavailable",
    "ServingError",
    "Signature",
    "TensorSpec",
    "error_from_rpc",
]


_TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


# -- errors -------------------------------------------------------------------


class ServingError(MlbridgeError):
    """A call to the model server failed. ``code`` is the grpc.StatusCode,
    ``details`` the server's message; ``transient`` is True when the same
    call may succeed later (see the module docstring)."""

    transient = False

    def __init__(self, code: grpc.StatusCode, details: str, method: str = ""):
        self.code = code
        self.details = details
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"model server: {where}{code.name}: {details}")


class ServerUnavailable(ServingError):
    """UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED: retry later."""

    transient = True


class ModelNotFound(ServingError):
    """NOT_FOUND: no such model, or no such version of it."""


class InvalidRequest(ServingError):
    """INVALID_ARGUMENT or FAILED_PRECONDITION: the request (an input's name,
    dtype or shape, an output name, a signature) does not fit the model."""


class MessageTooLarge(ServingError):
    """A message over the size limit (gRPC reports RESOURCE_EXHAUSTED, but
    sending the same batch again cannot succeed): send smaller batches."""


def error_from_rpc(error: grpc.RpcError, method: str = "") -> ServingError:
    """The ServingError for a failed gRPC call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return MessageTooLarge(code, details, method)
    if code in _TRANSIENT_CODES:
        return ServerUnavailable(code, details, method)
    if code == grpc.StatusCode.NOT_FOUND:
        return ModelNotFound(code, details, method)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return InvalidRequest(code, details, method)
    return ServingError(code, details, method)


# -- results ------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature. ``shape`` has None for a size that
    varies (the batch dimension); it is None itself when even the rank is
    unknown."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A signature of one model version, inputs and outputs sorted by name."""

    model: str
    version: int
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    method_name: str = ""

    def cast(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``inputs`` converted to the dtypes this signature expects (the
        server rejects a float64 array for a float32 input, as TF Serving
        does). Names the signature does not have are passed through."""
        dtypes = {spec.name: spec.dtype for spec in self.inputs}
        out = {}
        for key, value in inputs.items():
            if key in dtypes and dtypes[key] != "string":
                out[key] = np.asarray(value, dtype=numpy_dtype(dtypes[key]))
            else:
                out[key] = np.asarray(value)
        return out


@dataclass(frozen=True)
class ModelVersion:
    """One version of one model as the server reports it (ListModels).

    ``state`` is "AVAILABLE", "LOADING", "FAILED" (``error`` says why) or
    "UNLOADED" (on disk, loaded when a request names it). ``latest`` marks the
    version a request without a version gets."""

    name: str
    version: int
    state: str
    error: str = ""
    latest: bool = False
    signature_name: str = ""
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


def _specs(items: Iterable[tuple[str, Any]]) -> list[TensorSpec]:
    return [
        TensorSpec(name=name, dtype=dtype_name(info.dtype), shape=shape_tuple(info.tensor_shape))
        for name, info in sorted(items, key=lambda kv: kv[0])
    ]


# -- the client ---------------------------------------------------------------


def open_channel(target: str, security: ClientSecurity) -> grpc.Channel:
    """A channel to a model server with the message size limit and ``security``'s TLS
    (whatever protocol is spoken over it)."""
    options = [*message_size_options(), *security.channel_options()]
    credentials = security.channel_credentials()
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


class GrpcClient:
    """What the clients of both protocols share: one channel to ``target``
    ("host:port"), each call's deadline (``timeout``, seconds), the bearer
    token's metadata, and gRPC's errors turned into ServingError.

    Thread-safe; one instance serves a whole process. ``security`` (see
    mlbridge.serving_security): TLS, a client certificate, a bearer token;
    None is a plaintext channel without a token. Use as a context manager or
    call close()."""

    def __init__(self, target: str, timeout: float = 30.0, security: ClientSecurity | None = None):
        self.target = target
        self.timeout = timeout
        self.security = security or ClientSecurity()
        self._metadata = self.security.metadata()
        self._channel = open_channel(target, self.security)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"

    def _call(self, method: str, rpc: Any, request: Any, timeout: float | None) -> Any:
        try:
            return rpc(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise error_from_rpc(e, method) from None


class ModelServerClient(GrpcClient):
    """A channel to one model server speaking TF Serving's API (see GrpcClient)."""

    def __init__(self, target: str, timeout: float = 30.0, security: ClientSecurity | None = None):
        super().__init__(target, timeout, security)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._catalog = model_catalog_pb2_grpc.ModelCatalogStub(self._channel)

    def predict(
        self,
        name: str,
        version: int | None,
        inputs: Mapping[str, Any],
        output_filter: Iterable[str] | None = None,
        signature: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``signature`` of model ``name`` (``version``, or the newest when
        None) on a batch: ``inputs`` maps each input name to an array (or a
        ready TensorProto). Returns every output, or those in ``output_filter``."""
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(_model_spec(name, version, signature))
        for key, value in inputs.items():
            if isinstance(value, tensor_pb2.TensorProto):
                request.inputs[key].CopyFrom(value)
            else:
                write_tensor_proto(request.inputs[key], value)
        if output_filter:
            request.output_filter.extend(output_filter)
        response = self._call("Predict", self._predict.Predict, request, timeout)
        return {key: from_tensor_proto(tensor) for key, tensor in response.outputs.items()}

    def metadata(
        self,
        name: str,
        version: int | None = None,
        signature: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> Signature:
        """The inputs and outputs of ``signature`` of a model version
        (the newest when ``version`` is None), via GetModelMetadata."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(name, version, ""), metadata_field=[SIGNATURE_DEF_FIELD]
        )
        response = self._call("GetModelMetadata", self._predict.GetModelMetadata, request, timeout)
        packed = response.metadata.get(SIGNATURE_DEF_FIELD)
        if packed is None or not packed.type_url.endswith("SignatureDefMap"):
            raise ServingError(
                grpc.StatusCode.INTERNAL, "the response has no signature_def", "GetModelMetadata"
            )
        # Any.Unpack() insists on the message's full name; TF Serving's is
        # tensorflow.serving.SignatureDefMap, ours mlbridge.wire.SignatureDefMap:
        # same fields, so parse the bytes directly.
        signatures = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
        if signature not in signatures.signature_def:
            available = ", ".join(sorted(signatures.signature_def)) or "none"
            raise InvalidRequest(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'model "{name}" has no signature "{signature}" (it has: {available})',
                "GetModelMetadata",
            )
        sig: meta_graph_pb2.SignatureDef = signatures.signature_def[signature]
        return Signature(
            model=response.model_spec.name or name,
            version=response.model_spec.version.value,
            name=signature,
            inputs=_specs(sig.inputs.items()),
            outputs=_specs(sig.outputs.items()),
            method_name=sig.method_name,
        )

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The server's gRPC health status: "SERVING" once it has loaded its
        models, "NOT_SERVING" while it starts or stops."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        request = health_pb2.HealthCheckRequest(service=service)
        reply = self._call("Health", health_pb2_grpc.HealthStub(self._channel).Check, request, timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def list_models(self, name: str = "", timeout: float | None = None) -> list[ModelVersion]:
        """Every version of every model the server knows (only ``name``'s when
        given), via the ModelCatalog extension."""
        request = model_catalog_pb2.ListModelsRequest(name=name)
        response = self._call("ListModels", self._catalog.ListModels, request, timeout)
        state_name = model_catalog_pb2.ModelVersionStatus.State.Name
        return [
            ModelVersion(
                name=m.name,
                version=m.version,
                state=state_name(m.state),
                error=m.error,
                latest=m.latest,
                signature_name=m.signature_name,
                inputs=_specs((s.name, _Info(s)) for s in m.inputs),
                outputs=_specs((s.name, _Info(s)) for s in m.outputs),
            )
            for m in response.models
        ]


class _Info:
    """Adapts a catalog TensorSpec to the fields of a TensorInfo."""

    __slots__ = ("dtype", "tensor_shape")

    def __init__(self, spec: model_catalog_pb2.TensorSpec):
        self.dtype = spec.dtype
        self.tensor_shape = spec.shape


def _model_spec(name: str, version: int | None, signature: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = int(version)
    return spec

