"""The Open Inference Protocol's gRPC service (inference.GRPCInferenceService): a thin
adapter from gRPC to v2_handlers, registered on the same server and port as TF Serving's
services (service.add_to_server)."""

from __future__ import annotations

from typing import Any

import grpc

from mlbridge.wire import open_inference_service_pb2_grpc

from .handlers import Handlers
from .metrics import NoMetrics
from .service import _answer
from .v2_handlers import V2Handlers


class InferenceServicer(open_inference_service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, handlers: Handlers, metrics: Any = None):
        self._v2 = V2Handlers(handlers)
        self._metrics = metrics or NoMetrics()

    def _call(self, method: str, handler, request, context):
        return _answer(method, request, context, handler, self._metrics)

    def ServerLive(self, request, context):  # noqa: N802 (gRPC's method name)
        return self._call("ServerLive", self._v2.server_live, request, context)

    def ServerReady(self, request, context):  # noqa: N802
        return self._call("ServerReady", self._v2.server_ready, request, context)

    def ModelReady(self, request, context):  # noqa: N802
        return self._call("ModelReady", self._v2.model_ready, request, context)

    def ServerMetadata(self, request, context):  # noqa: N802
        return self._call("ServerMetadata", self._v2.server_metadata, request, context)

    def ModelMetadata(self, request, context):  # noqa: N802
        return self._call("ModelMetadata", self._v2.model_metadata, request, context)

    def ModelInfer(self, request, context):  # noqa: N802
        return self._call("ModelInfer", self._v2.model_infer, request, context)

    def RepositoryIndex(self, request, context):  # noqa: N802
        return self._call("RepositoryIndex", self._v2.repository_index, request, context)


def add_inference_service(server: grpc.Server, handlers: Handlers, metrics: Any = None) -> None:
    open_inference_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(handlers, metrics), server
    )
