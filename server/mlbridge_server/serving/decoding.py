"""Requests that are not the message they claim to be answer INVALID_ARGUMENT.

gRPC parses a request with the method's deserializer before any handler runs,
and answers a parse failure INTERNAL ("Exception deserializing request!"), the
code of a server bug. This interceptor parses unary requests itself: garbage
bytes get INVALID_ARGUMENT naming the message expected, as every other bad
input does. Wrapped handlers are built once per method, not per call.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc

log = logging.getLogger(__name__)


class DecodeInterceptor(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler.request_streaming
            or handler.response_streaming
            or handler.request_deserializer is None
        ):
            return handler
        key = handler_call_details.method
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = _wrap(handler_call_details.method, handler)
            with self._lock:
                self._wrapped[key] = wrapped
        return wrapped


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse = handler.request_deserializer
    behaviour = handler.unary_unary
    message = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    expected = message.name if message is not None else "request"

    def call(data: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = parse(data)
        except Exception as e:  # DecodeError, and whatever else bad bytes raise
            log.debug("%s: a request that does not parse: %s", method, e)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {expected} message ({len(data)} bytes): {e}"[:2000],
            )
        return behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=None, response_serializer=handler.response_serializer
    )
