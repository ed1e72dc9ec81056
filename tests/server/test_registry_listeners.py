"""What follows the registry through ModelRegistry.add_listener: per-model gRPC health and the
metrics' model names, on a real registry with a loader that needs no TensorFlow."""

from __future__ import annotations

import shutil

from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from mlbridge_server.serving.health import NOT_SERVING, SERVING, ServerHealth
from mlbridge_server.serving.metrics import PrometheusMetrics

from .test_registry import FakeLoader, add_version, registry


def _status(health: ServerHealth, name: str):
    reply = health.servicer.Check(health_pb2.HealthCheckRequest(service=name), _Context())
    return reply.status if reply.status else None


class _Context:
    """Check's context: the servicer only sets a NOT_FOUND code on it."""

    def set_code(self, code):
        pass


def test_listeners_run_after_scans_and_on_demand_loads_and_one_that_fails_stops_nothing(tmp_path):
    loader = FakeLoader()
    reg = registry(tmp_path, loader)
    calls = []
    reg.add_listener(lambda: 1 / 0)  # logged; the others still run
    reg.add_listener(lambda: calls.append(sorted((s.name, s.version, s.state) for s in reg.statuses())))
    add_version(tmp_path, "m", 1)
    add_version(tmp_path, "m", 2)
    reg.scan()
    assert calls and calls[-1] == [("m", 1, "UNLOADED"), ("m", 2, "AVAILABLE")]
    before = len(calls)
    reg.resolve("m", 1)  # loaded on demand: the listeners hear of it
    assert len(calls) == before + 1 and calls[-1] == [("m", 1, "AVAILABLE"), ("m", 2, "AVAILABLE")]
    reg.resolve("m", 1)  # already loaded: nothing changed, nothing called
    assert len(calls) == before + 1


def test_health_of_each_model_follows_the_registry(tmp_path):
    reg = registry(tmp_path)
    health = ServerHealth(["tensorflow.serving.PredictionService"])
    reg.add_listener(lambda: health.update_models(reg.statuses()))
    add_version(tmp_path, "good", 1)
    add_version(tmp_path, "bad", 1, broken=True)
    add_version(tmp_path, "tensorflow.serving.PredictionService", 1)  # named like a service
    reg.scan()
    assert _status(health, "good") == SERVING
    assert _status(health, "bad") == NOT_SERVING
    assert _status(health, "never") is None  # unknown: NOT_FOUND
    # The service's own status stands (NOT_SERVING until the server says it serves).
    assert _status(health, "tensorflow.serving.PredictionService") == NOT_SERVING
    health.set_serving(True)
    assert _status(health, "") == SERVING
    shutil.rmtree(tmp_path / "good")
    reg.scan()
    assert _status(health, "good") == NOT_SERVING
    add_version(tmp_path, "bad", 2)
    reg.scan()
    assert _status(health, "bad") == SERVING
    health.shutdown()
    assert _status(health, "bad") == NOT_SERVING and _status(health, "") == NOT_SERVING
    add_version(tmp_path, "late", 1)
    reg.scan()  # after shutdown nothing turns SERVING again
    assert _status(health, "late") in (None, NOT_SERVING)


def test_metrics_label_only_known_model_names_and_report_each_version(tmp_path):
    reg = registry(tmp_path)
    add_version(tmp_path, "m", 1)
    add_version(tmp_path, "bad", 1, broken=True)
    prom = CollectorRegistry()
    recorder = PrometheusMetrics(prom)
    recorder.watch(reg)
    reg.scan()
    recorder.observe("Predict", "m", "NOT_FOUND", 0.001)  # a known model, no version resolved
    recorder.observe("Predict", "made-up", "NOT_FOUND", 0.001)
    recorder.observe("Predict", "m", "OK", 0.002, version=1)
    get = prom.get_sample_value
    assert get("mlbridge_server_request_errors_total",
               {"method": "Predict", "model": "m", "version": "", "code": "NOT_FOUND"}) == 1
    assert get("mlbridge_server_request_errors_total",
               {"method": "Predict", "model": "", "version": "", "code": "NOT_FOUND"}) == 1
    assert get("mlbridge_server_requests_total",
               {"method": "Predict", "model": "m", "version": "1", "code": "OK"}) == 1
    assert get("mlbridge_server_model_versions", {"model": "m", "version": "1", "state": "AVAILABLE"}) == 1
    assert get("mlbridge_server_model_versions", {"model": "bad", "version": "1", "state": "FAILED"}) == 1
    shutil.rmtree(tmp_path / "m")
    reg.scan()  # gone from the registry: gone from the scrape, and its name no longer a label
    assert get("mlbridge_server_model_versions", {"model": "m", "version": "1", "state": "AVAILABLE"}) is None
    recorder.observe("Predict", "m", "NOT_FOUND", 0.001)
    assert get("mlbridge_server_request_errors_total",
               {"method": "Predict", "model": "", "version": "", "code": "NOT_FOUND"}) == 2
