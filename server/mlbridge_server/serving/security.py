"""The model server's TLS credentials and its bearer-token interceptor.

See mlbridge.serving_security for the flags and variables of both sides. The gRPC health service
(grpc.health.v1.Health) needs no token: Kubernetes' grpc probes and grpc_health_probe cannot send
one, and it tells nothing but SERVING or NOT_SERVING. Every other method (Predict,
GetModelMetadata, ListModels) does, and is answered UNAUTHENTICATED without it.
"""

from __future__ import annotations

import hmac
import logging
import time

import grpc

from mlbridge.errors import MlbridgeError
from mlbridge.serving_constants import HEALTH_SERVICE
from mlbridge.serving_security import read_file

log = logging.getLogger(__name__)

# Server reflection is not open: with a token set, grpcurl sends it with -H (and
# -reflect-header), as it does for the calls themselves.
OPEN_PREFIXES = (f"/{HEALTH_SERVICE}/",)


def server_credentials(
    cert: str | None, key: str | None, client_ca: str | None
) -> grpc.ServerCredentials | None:
    """TLS credentials from PEM files; None (plaintext) when no certificate is given. With
    ``client_ca``, a client must present a certificate that CA signed (mTLS)."""
    if not cert and not key:
        if client_ca:
            raise MlbridgeError("mlbridge: --tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (cert and key):
        raise MlbridgeError("mlbridge: TLS needs both --tls-cert and --tls-key")
    return grpc.ssl_server_credentials(
        [(read_file(key, "TLS key"), read_file(cert, "TLS certificate"))],
        root_certificates=read_file(client_ca, "client CA") if client_ca else None,
        require_client_auth=bool(client_ca),
    )


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses, UNAUTHENTICATED, every call but the health checks that lacks metadata
    ``authorization: Bearer <token>``. The comparison takes the same time whatever the token
    sent (hmac.compare_digest). Each refusal is counted in ``metrics`` (code UNAUTHENTICATED,
    model "": the request is never parsed, and a caller without the token must not be able to
    add series of the names it makes up)."""

    def __init__(self, token: str, metrics=None):
        self._expected = token.encode()
        self._last_warning = 0.0
        self._metrics = metrics

    def _allowed(self, metadata) -> bool:
        for key, value in metadata or ():
            if key != "authorization":
                continue
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, given = value.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._expected):
                return True
        return False

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self._allowed(handler_call_details.invocation_metadata):
            return handler
        now = time.monotonic()
        if now - self._last_warning > 10.0:  # at most a line per 10 s, however many are refused
            self._last_warning = now
            log.warning("refused %s: no valid bearer token", method)

        short = method.rsplit("/", 1)[-1]

        def deny(_request, context):
            if self._metrics is not None:
                self._metrics.observe(short, "", grpc.StatusCode.UNAUTHENTICATED.name, 0.0)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

        kinds = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }
        return kinds[(handler.request_streaming, handler.response_streaming)](
            deny,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
