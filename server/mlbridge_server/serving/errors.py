"""The one exception the serving core raises for a request it cannot answer."""

from __future__ import annotations

import grpc


class RequestError(Exception):
    """Answer the request with this gRPC status code and message.

    Codes follow TF Serving: NOT_FOUND for an unknown model or version,
    INVALID_ARGUMENT for inputs that do not fit the signature, FAILED_PRECONDITION
    for a signature the model lacks or a version that failed to load, and
    UNAVAILABLE while a model is still loading (clients retry those).
    """

    def __init__(self, code: grpc.StatusCode, message: str):
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
