"""The gRPC servicers: thin adapters from gRPC to the handlers.

PredictionService's Classify, Regress and MultiInference are answered
UNIMPLEMENTED with a message that says what to call instead. They are
registered as raw-bytes methods rather than declared in prediction_service.proto:
their messages (tf.Example inputs) would be mirrored only to be refused, and
without a handler gRPC's own answer ("Method not found!") says nothing useful.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from mlbridge.serving_constants import (
    INFERENCE_SERVICE,
    MODEL_CATALOG_SERVICE,
    MODEL_SERVICE,
    PREDICTION_SERVICE,
)
from mlbridge.wire import (
    model_catalog_pb2_grpc,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from . import call_context
from .errors import RequestError
from .handlers import Handlers
from .metrics import NoMetrics
from .model_service import ModelServiceHandlers

# TF Serving's PredictionService methods mlbridge does not serve, and what to do instead.
NOT_SERVED = {
    "Classify": "call Predict with the classification signature's inputs",
    "Regress": "call Predict with the regression signature's inputs",
    "MultiInference": "call Predict once per signature",
}

log = logging.getLogger(__name__)


def _answer(
    method: str,
    request: Any,
    context: grpc.ServicerContext,
    handler: Callable[[Any], Any],
    metrics: Any,
) -> Any:
    started = time.perf_counter()
    code, message, response = grpc.StatusCode.OK, "", None
    # TF Serving's requests name the model in model_spec, the Open Inference Protocol's in
    # model_name (ModelInfer) or name (ModelReady, ModelMetadata).
    asked = (
        getattr(getattr(request, "model_spec", None), "name", "")
        or getattr(request, "model_name", "")
        or getattr(request, "name", "")
        or ""
    )
    # The record learns the version the request resolved to (call_context.resolved), for the
    # metrics' labels and the log lines written meanwhile.
    with call_context.recording(asked) as call:
        try:
            response = handler(request)
        except RequestError as e:
            code, message = e.code, e.message
        except Exception as e:  # a bug, not the client's fault: log it whole
            log.exception("%s failed", method)
            code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    metrics.observe(method, call.model, code.name, time.perf_counter() - started, version=call.version)
    if code is not grpc.StatusCode.OK:
        context.abort(code, message)
    return response


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, handlers: Handlers, metrics: Any = None):
        self._handlers = handlers
        self._metrics = metrics or NoMetrics()

    def Predict(self, request, context):  # noqa: N802 (gRPC's method name)
        return _answer("Predict", request, context, self._handlers.predict, self._metrics)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _answer(
            "GetModelMetadata", request, context, self._handlers.get_model_metadata, self._metrics
        )


class ModelCatalogServicer(model_catalog_pb2_grpc.ModelCatalogServicer):
    def __init__(self, handlers: Handlers, metrics: Any = None):
        self._handlers = handlers
        self._metrics = metrics or NoMetrics()

    def ListModels(self, request, context):  # noqa: N802
        return _answer("ListModels", request, context, self._handlers.list_models, self._metrics)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, handlers: ModelServiceHandlers, metrics: Any = None):
        self._handlers = handlers
        self._metrics = metrics or NoMetrics()

    def GetModelStatus(self, request, context):  # noqa: N802
        return _answer(
            "GetModelStatus", request, context, self._handlers.get_model_status, self._metrics
        )

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        return _answer(
            "HandleReloadConfigRequest", request, context, self._handlers.reload_config,
            self._metrics,
        )


def _not_served(method: str, metrics: Any) -> grpc.RpcMethodHandler:
    message = f"mlbridge serves Predict; {method} is not implemented: {NOT_SERVED[method]}"

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        def handler(_request: Any) -> Any:
            raise RequestError(grpc.StatusCode.UNIMPLEMENTED, message)

        return _answer(method, request, context, handler, metrics)

    # No (de)serializers: the request stays bytes, never parsed.
    return grpc.unary_unary_rpc_method_handler(refuse)


def add_to_server(server: grpc.Server, handlers: Handlers, metrics: Any = None) -> tuple[str, ...]:
    """Add the servicers to ``server``; returns the full names of the services added, which the
    health checks and server reflection list (a service added here must be named there too)."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(handlers, metrics), server
    )
    model_catalog_pb2_grpc.add_ModelCatalogServicer_to_server(
        ModelCatalogServicer(handlers, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(ModelServiceHandlers(handlers.registry), metrics), server
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                PREDICTION_SERVICE,
                {method: _not_served(method, metrics) for method in NOT_SERVED},
            ),
        )
    )
    # The Open Inference Protocol (KServe v2) on the same server and port.
    from .v2_service import add_inference_service

    add_inference_service(server, handlers, metrics)
    return (PREDICTION_SERVICE, MODEL_SERVICE, MODEL_CATALOG_SERVICE, INFERENCE_SERVICE)
