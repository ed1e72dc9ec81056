"""The model server's operations against the real server process: Prometheus metrics per model
and version, gRPC health per model, server reflection, JSON logs, and a graceful stop on
SIGTERM that lets a running call finish."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import urlopen

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from mlbridge.serving_client import ClientSecurity, ModelServerClient, ServingError
from mlbridge.serving_constants import (
    HEALTH_SERVICE,
    INFERENCE_SERVICE,
    MODEL_CATALOG_SERVICE,
    MODEL_SERVICE,
    PREDICTION_SERVICE,
)

from ..procs import Process, free_port, wait_for
from .conftest import REPO, install_version, run_server, server_env, wait_until
from .models import build_slow

X = np.array([0.0, 1.0, -2.5], dtype=np.float32)
Y = np.array([1.0, -1.0, 0.5], dtype=np.float32)
TOKEN = "ops-token_for.tests"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def base(saved_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    install_version(folder, "churn", 1, saved_models["churn_v1"])
    install_version(folder, "text", 1, saved_models["text"])
    return folder


@pytest.fixture(scope="module")
def server(base, token_file, tmp_path_factory):
    """One server with a token, metrics and JSON logs at DEBUG (`python -m mlbridge_server.serving`),
    its versions in model processes: their log lines are checked to be the front's kind too (the
    other server modules run the default, versions in the server process)."""
    metrics_port = free_port()
    with run_server(base, tmp_path_factory.mktemp("server"), 0.2, "--metrics-port", str(metrics_port),
                    "--token-file", str(token_file), "--log-format", "json", "--log-level", "DEBUG",
                    "--model-isolation", "process") as process:
        process.metrics_port = metrics_port
        yield process


@pytest.fixture(scope="module")
def client(server):
    with ModelServerClient(server.target, timeout=30, security=ClientSecurity(token=TOKEN)) as c:
        yield c


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def _samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples, name: str, **labels: str) -> float | None:
    found = [v for n, lab, v in samples if n == name and lab == labels]
    return found[0] if found else None


def _health(channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10).status


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_per_model_and_version_count_every_answer(server, client):
    client.predict("churn", None, {"x": X, "y": Y})
    client.predict("churn", 1, {"x": X, "y": Y})
    with pytest.raises(ServingError):  # resolves to version 1, then fails on the inputs
        client.predict("churn", None, {"x": X})
    with pytest.raises(ServingError):  # no such version: resolves to none
        client.predict("churn", 99, {"x": X, "y": Y})
    with pytest.raises(ServingError):  # a made-up model name never becomes a series of its own
        client.predict("no-such-model-xyz", None, {"x": X})
    with ModelServerClient(server.target, timeout=30) as anonymous:
        with pytest.raises(ServingError) as refused:
            anonymous.predict("churn", None, {"x": X, "y": Y})
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED

    samples = _samples(server.metrics_port)
    ok = dict(method="Predict", model="churn", version="1", code="OK")
    assert _value(samples, "mlbridge_server_requests_total", **ok) == 2
    assert _value(samples, "mlbridge_server_request_errors_total", **ok) is None
    bad = dict(method="Predict", model="churn", version="1", code="INVALID_ARGUMENT")
    assert _value(samples, "mlbridge_server_requests_total", **bad) == 1
    assert _value(samples, "mlbridge_server_request_errors_total", **bad) == 1
    missing = dict(method="Predict", model="churn", version="", code="NOT_FOUND")
    assert _value(samples, "mlbridge_server_request_errors_total", **missing) == 1
    unknown = dict(method="Predict", model="", version="", code="NOT_FOUND")
    assert _value(samples, "mlbridge_server_request_errors_total", **unknown) == 1
    assert not any(lab.get("model") == "no-such-model-xyz" for _, lab, _ in samples)
    # Refused by the token interceptor before any handler ran: counted all the same.
    refused_labels = dict(method="Predict", model="", version="", code="UNAUTHENTICATED")
    assert _value(samples, "mlbridge_server_requests_total", **refused_labels) == 1
    assert _value(samples, "mlbridge_server_request_errors_total", **refused_labels) == 1
    # Latency per model and version: a histogram with every call to version 1 in it.
    assert _value(samples, "mlbridge_server_request_seconds_count", method="Predict", model="churn",
                  version="1") == 3
    assert _value(samples, "mlbridge_server_request_seconds_bucket", method="Predict", model="churn",
                  version="1", le="+Inf") == 3


def test_metrics_name_the_version_for_metadata_and_the_loaded_versions(server, client):
    client.metadata("text")
    samples = _samples(server.metrics_port)
    assert _value(samples, "mlbridge_server_requests_total", method="GetModelMetadata", model="text",
                  version="1", code="OK") == 1
    assert _value(samples, "mlbridge_server_model_versions", model="churn", version="1", state="AVAILABLE") == 1
    assert _value(samples, "mlbridge_server_model_versions", model="text", version="1", state="AVAILABLE") == 1
    assert _value(samples, "mlbridge_server_model_versions", model="churn", version="1", state="FAILED") is None


def test_batch_and_queue_delay_recorders():
    """The calls the batcher makes, on a registry of their own; NoMetrics takes them too."""
    from prometheus_client import CollectorRegistry

    from mlbridge_server.serving.metrics import NoMetrics, PrometheusMetrics

    registry = CollectorRegistry()
    recorder = PrometheusMetrics(registry)
    recorder.observe_batch("churn", 3, 8)
    recorder.observe_batch("churn", 3, 1000)
    recorder.observe_queue_delay("churn", 3, 0.0004)
    get = registry.get_sample_value
    assert get("mlbridge_server_batch_rows_count", {"model": "churn", "version": "3"}) == 2
    assert get("mlbridge_server_batch_rows_sum", {"model": "churn", "version": "3"}) == 1008
    assert get("mlbridge_server_batch_rows_bucket", {"model": "churn", "version": "3", "le": "8.0"}) == 1
    assert get("mlbridge_server_queue_delay_seconds_bucket",
               {"model": "churn", "version": "3", "le": "0.0005"}) == 1
    none = NoMetrics()
    none.observe_batch("churn", 3, 8)
    none.observe_queue_delay("churn", 3, 0.1)
    none.observe("Predict", "churn", "OK", 0.1, version="3")


# -- health -----------------------------------------------------------------------------------


def test_health_of_the_server_and_every_service_without_a_token(channel):
    for service in ("", PREDICTION_SERVICE, MODEL_SERVICE, MODEL_CATALOG_SERVICE):
        assert _health(channel, service) == SERVING, service
    assert _health(channel, "churn") == SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        _health(channel, "never-seen")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_of_a_model_follows_its_versions(base, channel, saved_models):
    broken = base / "late" / ".tmp-1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    broken.rename(base / "late" / "1")
    # Known, but no version loads: NOT_SERVING, not NOT_FOUND.
    wait_until(lambda: _status_or_none(channel, "late") == NOT_SERVING, 60, "late NOT_SERVING")
    install_version(base, "late", 2, saved_models["churn_v2"])
    wait_until(lambda: _health(channel, "late") == SERVING, 60, "late SERVING")
    shutil.rmtree(base / "late")
    wait_until(lambda: _health(channel, "late") == NOT_SERVING, 60, "late NOT_SERVING once removed")
    assert _health(channel, "") == SERVING and _health(channel, "churn") == SERVING


def _status_or_none(channel, service: str) -> int | None:
    try:
        return _health(channel, service)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


# -- reflection -------------------------------------------------------------------------------


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call of a channel (the reflection client takes no metadata)."""

    def _details(self, details):
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {TOKEN}")]
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def test_reflection_lists_every_service_and_describes_predict(server, channel):
    from google.protobuf.descriptor_pool import DescriptorPool

    with grpc.intercept_channel(grpc.insecure_channel(server.target), _Bearer()) as authed:
        database = ProtoReflectionDescriptorDatabase(authed)
        services = set(database.get_services())
        assert services == {PREDICTION_SERVICE, MODEL_SERVICE, MODEL_CATALOG_SERVICE, HEALTH_SERVICE,
                            INFERENCE_SERVICE, "grpc.reflection.v1alpha.ServerReflection"}
        pool = DescriptorPool(database)
        predict = pool.FindServiceByName(PREDICTION_SERVICE).methods_by_name["Predict"]
        assert predict.input_type.full_name.endswith("PredictRequest")
        assert "model_spec" in predict.input_type.fields_by_name
        assert "GetModelStatus" in pool.FindServiceByName(MODEL_SERVICE).methods_by_name
    # Behind the token like every call but the health checks.
    with pytest.raises(grpc.RpcError) as refused:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- logs -------------------------------------------------------------------------------------


def test_json_logs_one_object_a_line_with_model_and_version(server, client):
    with pytest.raises(ServingError):  # TensorFlow fails on this text: logged at DEBUG, in the call
        client.predict("text", 1, {"text": np.array([b"not a number"], dtype=object)}, signature="parse")
    client.predict("churn", 1, {"x": X, "y": Y})
    time.sleep(0.2)
    lines = server.output().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # TensorFlow's C++ start-up lines bypass Python logging; no Python log line is plain text.
    text_line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR) ")
    assert not [line for line in lines if text_line.match(line)]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    assert any(r["message"].startswith("listening on 127.0.0.1:") and r["level"] == "INFO" for r in records)
    failed = [r for r in records if "failed:" in r["message"] and r.get("model") == "text"]
    assert failed and failed[0]["version"] == "1", records[-10:]
    assert any(r.get("model") == "churn" and r["logger"].endswith("health") for r in records)
    # The model processes log as the front does: JSON, at its level, naming their model and version.
    loaded = [r for r in records if r["logger"].endswith("model_process") and r["message"].startswith("loaded")]
    assert {(r["model"], r["version"], r["level"]) for r in loaded} >= {("churn", 1, "DEBUG"), ("text", 1, "DEBUG")}


# -- graceful shutdown ------------------------------------------------------------------------


def test_sigterm_lets_the_running_call_finish_refuses_new_ones_and_exits_0(tmp_path):
    """`mlbridge serve` from a settings file; SIGTERM while a 2 s call runs and a client watches
    the model's health. The grace period is long (30 s) so that a stop held up by the open Watch
    stream, rather than by the call, cannot pass for a prompt one."""
    build_slow(tmp_path / "models" / "slow" / "1")
    port = free_port()
    settings = tmp_path / "settings.toml"
    settings.write_text(f"[serving]\nmodel_base = 'models'\nport = {port}\nshutdown_grace = 30\n"
                        "log_format = 'json'\n")
    ready = tmp_path / "ready"
    log = tmp_path / "server.log"
    env = {**server_env(), "MLBRIDGE_SETTINGS": str(settings), "MLBRIDGE_SERVING_POLL_INTERVAL": "0.3"}
    with open(log, "ab") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "mlbridge", "serve", "--ready-file", str(ready)],
                                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=REPO)
    process = Process(proc, log, f"127.0.0.1:{port}")
    try:
        wait_for(ready, process, "model server", timeout=120)
        assert json.loads(ready.read_text())["port"] == port  # the port came from the file
        outcome: dict = {}

        def slow_call() -> None:
            with ModelServerClient(process.target, timeout=30) as c:
                try:
                    reply = c.predict("slow", None, {"seconds": np.array([2.0], np.float32)})
                    outcome["waited"] = float(reply["waited"][0])
                except ServingError as e:
                    outcome["error"] = e

        watched: list = []

        def watch() -> None:
            with grpc.insecure_channel(process.target) as ch:
                stream = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service="slow"))
                try:
                    for reply in stream:
                        watched.append(reply.status)
                    watched.append("ended")
                except grpc.RpcError as e:
                    watched.append(e.code())

        watcher = threading.Thread(target=watch)
        watcher.start()
        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.8)  # the call is running in the model
        assert "waited" not in outcome and "error" not in outcome
        assert watched == [SERVING]
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with ModelServerClient(process.target, timeout=5) as late:
            with pytest.raises(ServingError) as refused:
                late.predict("slow", None, {"seconds": np.array([0.0], np.float32)})
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        caller.join(30)
        assert "error" not in outcome, outcome
        assert outcome["waited"] >= 2.0
        assert proc.wait(30) == 0
        assert time.monotonic() - signalled < 20  # the call's time, not the 30 s grace period
        watcher.join(10)
        assert watched == [SERVING, NOT_SERVING, "ended"]
        assert not ready.exists()
        records = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
        assert any(r["message"].startswith("stopping") for r in records)
        assert any(r["message"] == "stopped" for r in records)
    finally:
        process.stop()
