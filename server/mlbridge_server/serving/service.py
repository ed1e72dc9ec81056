"""The gRPC servicers: thin adapters from gRPC to the handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from mlbridge.wire import model_catalog_pb2_grpc, prediction_service_pb2_grpc

from .errors import RequestError
from .handlers import Handlers
from .metrics import NoMetrics

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
    try:
        response = handler(request)
    except RequestError as e:
        code, message = e.code, e.message
    except Exception as e:  # a bug, not the client's fault: log it whole
        log.exception("%s failed", method)
        code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    model = getattr(getattr(request, "model_spec", None), "name", "") or ""
    metrics.observe(method, model, code.name, time.perf_counter() - started)
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


def add_to_server(server: grpc.Server, handlers: Handlers, metrics: Any = None) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(handlers, metrics), server
    )
    model_catalog_pb2_grpc.add_ModelCatalogServicer_to_server(
        ModelCatalogServicer(handlers, metrics), server
    )
