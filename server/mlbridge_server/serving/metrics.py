"""Prometheus metrics of the model server, when a metrics port is given."""

from __future__ import annotations

from mlbridge.metrics import serve_metrics


class NoMetrics:
    """Records nothing: no metrics port was asked for."""

    def observe(self, method: str, model: str, code: str, seconds: float) -> None:
        pass


class PrometheusMetrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(
            "mlbridge_server_requests",
            "Requests answered, by method, model and gRPC status code.",
            ["method", "model", "code"],
        )
        self.latency = Histogram(
            "mlbridge_server_request_seconds",
            "Time to answer a request, by method.",
            ["method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe(self, method: str, model: str, code: str, seconds: float) -> None:
        self.requests.labels(method, model, code).inc()
        self.latency.labels(method).observe(seconds)


_prometheus: PrometheusMetrics | None = None


def start(port: int | None, host: str = "0.0.0.0") -> NoMetrics | PrometheusMetrics:
    """Serve /metrics on ``port`` and return the recorder; NoMetrics when ``port`` is None."""
    global _prometheus
    if port is None:
        return NoMetrics()
    if _prometheus is None:  # metrics register once per process
        _prometheus = PrometheusMetrics()
    serve_metrics(port, host, "model server")
    return _prometheus
