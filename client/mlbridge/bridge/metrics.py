"""The bridge's Prometheus metrics on `mlbridge bridge --metrics-port N` (/metrics)."""

from __future__ import annotations

from ..metrics import serve_metrics

STAGES = ("claim", "read", "convert", "predict", "write")


class NoMetrics:
    """Records nothing: no metrics port was asked for."""

    def rows(self, scored: int, failed: int) -> None:
        pass

    def chunk(self, outcome: str, seconds: float | None = None) -> None:
        pass

    def predict(self, seconds: float) -> None:
        pass

    def db_error(self) -> None:
        pass

    def stage(self, name: str, seconds: float) -> None:
        pass


class PrometheusMetrics(NoMetrics):
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self._rows = Counter("mlbridge_bridge_rows", "Rows written to the results, by result.", ["result"])
        self._chunks = Counter(
            "mlbridge_bridge_chunks",
            "Chunks handled, by outcome: done, failed (for good), released (server unreachable; "
            "attempt refunded), retried (attempt used), lost (claim gone before close).",
            ["outcome"],
        )
        self._chunk_seconds = Histogram(
            "mlbridge_bridge_chunk_seconds", "From claim to close of a chunk that was closed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._predict_seconds = Histogram(
            "mlbridge_bridge_predict_seconds", "One Predict call to the model server.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._db_errors = Counter("mlbridge_bridge_db_errors", "Database errors that made the bridge reconnect.")
        self._stage_seconds = Counter(
            "mlbridge_bridge_stage_seconds",
            "Seconds spent per stage of the pipeline: claim (claiming chunks), read (their rows), "
            "convert (values to tensors, outputs to results), predict (the model server), write (results and close).",
            ["stage"],
        )
        # Every series exists from the start, at 0: an idle bridge reports 0 rows, not nothing.
        for result in ("scored", "failed"):
            self._rows.labels(result)
        for outcome in ("done", "failed", "released", "retried", "lost"):
            self._chunks.labels(outcome)
        for stage in STAGES:
            self._stage_seconds.labels(stage)

    def rows(self, scored: int, failed: int) -> None:
        self._rows.labels("scored").inc(scored)
        self._rows.labels("failed").inc(failed)

    def chunk(self, outcome: str, seconds: float | None = None) -> None:
        self._chunks.labels(outcome).inc()
        if seconds is not None:
            self._chunk_seconds.observe(seconds)

    def predict(self, seconds: float) -> None:
        self._predict_seconds.observe(seconds)

    def db_error(self) -> None:
        self._db_errors.inc()

    def stage(self, name: str, seconds: float) -> None:
        self._stage_seconds.labels(name).inc(seconds)


def start(port: int | None, host: str = "0.0.0.0") -> NoMetrics:
    if port is None:
        return NoMetrics()
    metrics = PrometheusMetrics()
    serve_metrics(port, host, "bridge")
    return metrics
