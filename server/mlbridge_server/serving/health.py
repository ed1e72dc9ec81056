"""gRPC health (grpc.health.v1.Health) for the server, each service it hosts, and each model.

Service names a health check may ask for:

- "" (the server as a whole) and each hosted gRPC service by its full name
  ("tensorflow.serving.PredictionService", ...): SERVING once the first scan of the model base is
  done, NOT_SERVING before, and from the moment the server begins to shut down;
- a model's name ("churn"): SERVING while the model has a version AVAILABLE, NOT_SERVING
  otherwise (still loading, every version failed, removed from disk or from the model config).
  A name the server never knew answers NOT_FOUND, as the health protocol says. A Kubernetes probe
  for one model is ``grpc: {port: 8500, service: churn}``.

A model named exactly like a hosted gRPC service would share its entry; the service's status
wins and a warning says so. At shutdown every name turns NOT_SERVING, and open Watch streams
receive it and then end, so that they do not hold the stop for the whole grace period. Model states follow the registry through its listener, so a check
sees a version as soon as it is loaded, not at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _HealthServicer(health.HealthServicer):
    """grpc_health's servicer, whose Watch streams end when the server shuts down. Left open,
    one client's Watch would hold the stop for the whole grace period: a Watch never ends on
    its own, and gRPC's stop(grace) waits for every call still open."""

    def __init__(self) -> None:
        super().__init__()
        self._watchers: set = set()
        self._watchers_lock = threading.Lock()
        self._closed = False

    def Watch(self, request, context, send_response_callback=None):  # noqa: N802 (gRPC's name)
        result = super().Watch(request, context, send_response_callback)
        if send_response_callback is not None:  # the non-blocking form, which grpc.server uses
            with self._watchers_lock:
                if self._closed:
                    send_response_callback(None)
                    return result
                self._watchers.add(send_response_callback)

            def forget() -> None:
                with self._watchers_lock:
                    self._watchers.discard(send_response_callback)

            context.add_callback(forget)
        return result

    def close_watches(self) -> None:
        """End every open Watch (after its NOT_SERVING was sent), and any opened later."""
        with self._watchers_lock:
            self._closed = True
            watchers, self._watchers = list(self._watchers), set()
        for send in watchers:
            try:
                send(None)  # None: the call ends with OK
            except Exception:  # a call the client already left
                log.debug("closing a health watch failed", exc_info=True)


class ServerHealth:
    def __init__(self, services: Iterable[str]):
        self.servicer = _HealthServicer()
        self.services = ("", *services)
        self._models: dict[str, int] = {}
        self._server_status = NOT_SERVING
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        for name in self.services:
            self.servicer.set(name, NOT_SERVING)

    def set_serving(self, serving: bool) -> None:
        """The server's and its services' status."""
        with self._lock:
            self._server_status = SERVING if serving else NOT_SERVING
            for name in self.services:
                self.servicer.set(name, self._server_status)

    def update_models(self, statuses) -> None:
        """Bring each model's status in line with the registry's ``statuses()``."""
        available: dict[str, bool] = {}
        for status in statuses:
            available[status.name] = available.get(status.name, False) or status.state == "AVAILABLE"
        with self._lock:
            for name in set(self._models) - set(available):
                available[name] = False  # gone: known, not serving
            for name, is_available in sorted(available.items()):
                if name in self.services:
                    if name not in self._warned:
                        self._warned.add(name)
                        log.warning("model %s is named like a gRPC service: its health check answers for "
                                    "the service", name, extra={"model": name})
                    continue
                status = SERVING if is_available else NOT_SERVING
                if self._models.get(name) != status:
                    self._models[name] = status
                    self.servicer.set(name, status)
                    log.debug("health of model %s: %s", name,
                              health_pb2.HealthCheckResponse.ServingStatus.Name(status), extra={"model": name})

    def shutdown(self) -> None:
        """NOT_SERVING everywhere, for good (later updates are ignored), sent to every Watch,
        which then ends."""
        self.servicer.enter_graceful_shutdown()
        self.servicer.close_watches()
