"""The one exception the serving core raises for a request it cannot answer."""

from __future__ import annotations

import grpc

# The message travels percent-encoded in the grpc-message trailer (up to 3 bytes
# a byte), and gRPC clients refuse trailers over 8 KiB by default, answering
# RESOURCE_EXHAUSTED in place of our code: a message that echoes a long input
# name or value is cut to this many UTF-8 bytes.
MAX_MESSAGE_BYTES = 2000


def _bounded(message: str) -> str:
    data = message.encode("utf-8", "replace")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    return data[: MAX_MESSAGE_BYTES - 20].decode("utf-8", "ignore") + " ... (message cut)"


class RequestError(Exception):
    """Answer the request with this gRPC status code and message.

    Codes follow TF Serving: NOT_FOUND for an unknown model or version,
    INVALID_ARGUMENT for inputs that do not fit the signature, FAILED_PRECONDITION
    for a signature the model lacks or a version that failed to load, and
    UNAVAILABLE while a model is still loading (clients retry those).
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        message = _bounded(message)
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.NOT_FOUND, message)


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.UNAVAILABLE, message)


def resource_exhausted(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
