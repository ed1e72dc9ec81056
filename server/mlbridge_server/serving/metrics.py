"""Prometheus metrics of the model server, when a metrics port is given.

Per model and version (the version a request resolved to; "" when it resolved to none: an unknown
model or version, a call refused for its token, a model that is not loaded):

- ``mlbridge_server_requests_total{method,model,version,code}``: calls answered, by gRPC code;
- ``mlbridge_server_request_errors_total{method,model,version,code}``: those answered with an error;
- ``mlbridge_server_request_seconds{method,model,version}``: time to answer (histogram);
- ``mlbridge_server_batch_rows{model,version}``: rows per batch the batcher ran (histogram);
- ``mlbridge_server_queue_delay_seconds{model,version}``: time a call waited for its batch to
  start (histogram);
- ``mlbridge_server_model_versions{model,version,state}``: 1 for each version the server knows, in
  its state (AVAILABLE, LOADING, FAILED, UNLOADED), read from the registry at each scrape, so a
  version that is gone leaves no stale series behind.

The model label of a call that resolved to nothing is the name it asked for only while the
server knows a model of that name, else "": otherwise every made-up name a client sends would
become a series of its own, and a scrape could grow without bound.
"""

from __future__ import annotations

import threading
from typing import Any

from mlbridge.metrics import serve_metrics

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
QUEUE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1)


class NoMetrics:
    """Records nothing: no metrics port was asked for."""

    def observe(self, method: str, model: str, code: str, seconds: float, version: str = "") -> None:
        pass

    def observe_batch(self, model: str, version: Any, rows: int) -> None:
        pass

    def observe_queue_delay(self, model: str, version: Any, seconds: float) -> None:
        pass

    def watch(self, registry: Any) -> None:
        pass


class _ModelVersions:
    """A collector: the registry's versions and their states, at scrape time."""

    def __init__(self) -> None:
        self.registry: Any = None

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "mlbridge_server_model_versions",
            "Model versions the server knows, 1 in their state: AVAILABLE, LOADING, FAILED, UNLOADED.",
            labels=["model", "version", "state"],
        )
        registry = self.registry
        if registry is not None:
            for status in registry.statuses():
                family.add_metric([status.name, str(status.version), status.state], 1)
        yield family


class PrometheusMetrics:
    """The recorder; ``registry``: prometheus_client's CollectorRegistry (default: the process's,
    which /metrics serves)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = REGISTRY if registry is None else registry

        self.requests = Counter(
            "mlbridge_server_requests",
            "Requests answered, by method, model, version and gRPC status code.",
            ["method", "model", "version", "code"],
            registry=registry,
        )
        self.errors = Counter(
            "mlbridge_server_request_errors",
            "Requests answered with an error, by method, model, version and gRPC status code.",
            ["method", "model", "version", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlbridge_server_request_seconds",
            "Time to answer a request, by method, model and version.",
            ["method", "model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "mlbridge_server_batch_rows",
            "Rows in each batch run, by model and version.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_delay = Histogram(
            "mlbridge_server_queue_delay_seconds",
            "Time a request waited for its batch to start, by model and version.",
            ["model", "version"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self._versions = _ModelVersions()
        registry.register(self._versions)
        self._known: frozenset[str] | None = None
        self._lock = threading.Lock()

    def watch(self, registry: Any) -> None:
        """Report ``registry``'s versions, and keep the names of its models for the labels."""
        self._versions.registry = registry

        def refresh() -> None:
            names = frozenset(status.name for status in registry.statuses())
            with self._lock:
                self._known = names

        refresh()
        registry.add_listener(refresh)

    def _model_label(self, model: str, version: str) -> str:
        known = self._known
        if version or known is None or model in known:
            return model
        return ""

    def observe(self, method: str, model: str, code: str, seconds: float, version: str = "") -> None:
        version = str(version or "")
        model = self._model_label(model, version)
        self.requests.labels(method, model, version, code).inc()
        if code != "OK":
            self.errors.labels(method, model, version, code).inc()
        self.latency.labels(method, model, version).observe(seconds)

    def observe_batch(self, model: str, version: Any, rows: int) -> None:
        self.batch_rows.labels(model, str(version)).observe(rows)

    def observe_queue_delay(self, model: str, version: Any, seconds: float) -> None:
        self.queue_delay.labels(model, str(version)).observe(seconds)


_prometheus: PrometheusMetrics | None = None


def start(port: int | None, host: str = "127.0.0.1") -> NoMetrics | PrometheusMetrics:
    """Serve /metrics on ``port`` and return the recorder; NoMetrics when ``port`` is None."""
    global _prometheus
    if port is None:
        return NoMetrics()
    if _prometheus is None:  # metrics register once per process
        _prometheus = PrometheusMetrics()
    serve_metrics(port, host, "model server")
    return _prometheus
