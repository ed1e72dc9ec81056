"""The /metrics endpoint the bridge and the model server share (Prometheus text format)."""

from __future__ import annotations

import logging

from .errors import MlbridgeError

log = logging.getLogger("mlbridge")


def serve_metrics(port: int, host: str, what: str) -> None:
    """Serve this process's Prometheus registry on http://host:port/metrics, in a thread."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise MlbridgeError(f"mlbridge: cannot serve {what} metrics on {host}:{port}: {exc}") from None
    log.info("%s metrics on http://%s:%d/metrics", what, host, port)
