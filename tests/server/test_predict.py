"""Predict, GetModelMetadata, ListModels and health against the real server
process, through our light client and through TF Serving's official one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlbridge.serving_client import (
    InvalidRequest,
    ModelNotFound,
    ModelServerClient,
    ServingError,
)
from mlbridge.tensors import to_tensor_proto
from mlbridge.wire import model_pb2, predict_pb2, prediction_service_pb2_grpc

from ..procs import free_port
from .conftest import install_version, run_server, server_env
from .models import call_directly

X = np.array([0.0, 1.0, -2.5, 3.25, 10.0], dtype=np.float32)
Y = np.array([1.0, -1.0, 0.5, 2.0, -4.0], dtype=np.float32)


@pytest.fixture(scope="module")
def server(saved_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("base")
    install_version(base, "churn", 1, saved_models["churn_v1"])
    install_version(base, "churn", 2, saved_models["churn_v2"])
    install_version(base, "text", 1, saved_models["text"])
    metrics_port = free_port()
    with run_server(
        base, tmp_path_factory.mktemp("server"), 0.5, "--metrics-port", str(metrics_port)
    ) as process:
        process.metrics_port = metrics_port
        yield process


@pytest.fixture(scope="module")
def client(server):
    with ModelServerClient(server.target, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def expected(saved_models):
    return {
        1: call_directly(saved_models["churn_v1"], x=X, y=Y),
        2: call_directly(saved_models["churn_v2"], x=X, y=Y),
    }


def test_predict_newest_version_matches_the_saved_model(client, expected):
    out = client.predict("churn", None, {"x": X, "y": Y})
    assert set(out) == {"score", "label"}
    assert out["score"].dtype == np.float32 and out["label"].dtype == np.int64
    np.testing.assert_allclose(out["score"], expected[2]["score"], atol=1e-5)
    np.testing.assert_array_equal(out["label"], expected[2]["label"])


def test_predict_older_version_is_loaded_on_demand(client, expected):
    out = client.predict("churn", 1, {"x": X, "y": Y})
    np.testing.assert_allclose(out["score"], expected[1]["score"], atol=1e-5)
    versions = {m.version: m for m in client.list_models("churn")}
    assert versions[1].state == "AVAILABLE" and not versions[1].latest
    assert versions[2].latest


def test_response_names_the_model_version_and_signature(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="churn"))
        request.inputs["x"].CopyFrom(to_tensor_proto(X))
        request.inputs["y"].CopyFrom(to_tensor_proto(Y))
        response = stub.Predict(request, timeout=30)
    assert response.model_spec.name == "churn"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"


def test_empty_batch(client):
    empty = np.zeros(0, np.float32)
    out = client.predict("churn", None, {"x": empty, "y": empty})
    assert out["score"].shape == (0,) and out["label"].shape == (0,)


def test_output_filter(client, expected):
    out = client.predict("churn", 2, {"x": X, "y": Y}, output_filter=["score"])
    assert list(out) == ["score"]
    np.testing.assert_allclose(out["score"], expected[2]["score"], atol=1e-5)


def test_strings_and_ints(client):
    text = np.array(["abc", "Grüße", ""], dtype=object)
    out = client.predict("text", None, {"text": text, "n": np.array([1, 2, 3], dtype=np.int32)})
    assert out["upper"].tolist() == [b"ABC", "GRüßE".encode(), b""]
    assert out["length"].tolist() == [3, len("Grüße".encode()), 0]
    assert out["twice"].dtype == np.int32 and out["twice"].tolist() == [2, 4, 6]


def test_another_signature_and_a_tensorflow_error(client):
    out = client.predict("text", None, {"text": np.array(["1.5", "-2"])}, signature="parse")
    assert out["number"].dtype == np.float64 and out["number"].tolist() == [1.5, -2.0]
    with pytest.raises(InvalidRequest) as info:
        client.predict("text", None, {"text": np.array(["1.5", "abc"])}, signature="parse")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "abc" in info.value.details and "\n" not in info.value.details


def test_typed_val_inputs_and_broadcast(client, expected):
    """Clients that send float_val instead of tensor_content, or one value
    for a whole batch, get what TensorFlow would compute."""
    x = to_tensor_proto(np.zeros(0, np.float32))
    x.tensor_shape.dim[0].size = len(X)
    x.ClearField("tensor_content")
    x.float_val.extend(X.tolist())
    y = to_tensor_proto(np.zeros(0, np.float32))
    y.tensor_shape.dim[0].size = len(X)
    y.ClearField("tensor_content")
    y.float_val.append(0.5)
    out = client.predict("churn", 2, {"x": x, "y": y})
    direct = client.predict("churn", 2, {"x": X, "y": np.full(len(X), 0.5, np.float32)})
    np.testing.assert_allclose(out["score"], direct["score"], atol=1e-6)


def test_metadata(client):
    sig = client.metadata("churn")
    assert (sig.model, sig.version, sig.name) == ("churn", 2, "serving_default")
    assert [(s.name, s.dtype, s.shape) for s in sig.inputs] == [
        ("x", "float32", (None,)),
        ("y", "float32", (None,)),
    ]
    assert [(s.name, s.dtype, s.shape) for s in sig.outputs] == [
        ("label", "int64", (None,)),
        ("score", "float32", (None,)),
    ]
    assert sig.method_name == "tensorflow/serving/predict"
    assert client.metadata("churn", 1).version == 1
    cast = sig.cast({"x": [1, 2], "y": np.array([1.0, 2.0])})
    assert cast["x"].dtype == np.float32 and cast["y"].dtype == np.float32


def test_list_models(client):
    models = client.list_models()
    assert [(m.name, m.version) for m in models] == [("churn", 1), ("churn", 2), ("text", 1)]
    churn2 = models[1]
    assert churn2.state == "AVAILABLE" and churn2.latest and churn2.error == ""
    assert churn2.signature_name == "serving_default"
    assert [(s.name, s.dtype) for s in churn2.inputs] == [("x", "float32"), ("y", "float32")]
    assert [(s.name, s.dtype) for s in churn2.outputs] == [("label", "int64"), ("score", "float32")]
    text = models[2]
    assert [(s.name, s.dtype) for s in text.inputs] == [("n", "int32"), ("text", "string")]
    assert [m.name for m in client.list_models("text")] == ["text"]


def test_health_is_serving(server, client):
    assert client.health() == "SERVING"
    with grpc.insecure_channel(server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService", "mlbridge.wire.ModelCatalog"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- bad requests -------------------------------------------------------------


def _fails(client, *args, **kwargs) -> ServingError:
    with pytest.raises(ServingError) as info:
        client.predict(*args, **kwargs)
    assert not info.value.transient
    return info.value


def test_unknown_model(client):
    error = _fails(client, "no_such_model", None, {"x": X})
    assert isinstance(error, ModelNotFound) and error.code == grpc.StatusCode.NOT_FOUND
    assert '"no_such_model"' in error.details


def test_unknown_version(client):
    error = _fails(client, "churn", 7, {"x": X, "y": Y})
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert "version 7" in error.details and "versions: 1, 2" in error.details


@pytest.mark.parametrize("name", ["../churn", ".hidden", "churn/1", "/etc"])
def test_model_names_never_leave_the_model_base(client, name):
    assert _fails(client, name, 1, {"x": X}).code == grpc.StatusCode.NOT_FOUND


def test_model_name_is_required(client):
    error = _fails(client, "", None, {"x": X})
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "name" in error.details


def test_missing_input(client):
    error = _fails(client, "churn", None, {"x": X})
    assert isinstance(error, InvalidRequest) and error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert 'missing input "y"' in error.details


def test_extra_input(client):
    error = _fails(client, "churn", None, {"x": X, "y": Y, "z": Y})
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert 'unknown input "z"' in error.details


def test_wrong_dtype(client):
    error = _fails(client, "churn", None, {"x": X.astype(np.float64), "y": Y})
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert 'input "x" must be float32, got float64' in error.details


def test_wrong_rank_and_batch_size(client):
    error = _fails(client, "churn", None, {"x": X.reshape(-1, 1), "y": Y})
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and 'input "x"' in error.details
    error = _fails(client, "churn", None, {"x": X, "y": Y[:2]})
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "batch size" in error.details


def test_unknown_output_and_signature(client):
    error = _fails(client, "churn", None, {"x": X, "y": Y}, output_filter=["nope"])
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "'nope'" in error.details
    error = _fails(client, "churn", None, {"x": X, "y": Y}, signature="nope")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert '"nope"' in error.details and "serving_default" in error.details


def test_version_label_without_a_model_config_is_not_found(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name="churn", version_label="canary")
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert '"canary"' in info.value.details() and "--model-config-file" in info.value.details()


def test_metadata_needs_signature_def_field(server):
    from mlbridge.wire import get_model_metadata_pb2

    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for fields in ([], ["bogus"]):
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=model_pb2.ModelSpec(name="churn"), metadata_field=fields
            )
            with pytest.raises(grpc.RpcError) as info:
                stub.GetModelMetadata(request, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unreachable_server_is_transient():
    with ModelServerClient("127.0.0.1:1", timeout=2) as c:
        with pytest.raises(ServingError) as info:
            c.predict("churn", None, {"x": X})
    assert info.value.transient and info.value.code == grpc.StatusCode.UNAVAILABLE


# -- TF Serving's official client ---------------------------------------------


def test_official_tf_serving_client(server, expected):
    script = Path(__file__).with_name("official_client.py")
    features = json.dumps({"x": X.tolist(), "y": Y.tolist()})
    done = subprocess.run(
        [sys.executable, str(script), server.target, "churn", "1", features],
        capture_output=True, text=True, timeout=180, env=server_env(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    pinned = out["arrays"]
    assert pinned["model_spec"] == {"name": "churn", "version": 1, "signature_name": "serving_default"}
    np.testing.assert_allclose(pinned["outputs"]["score"], expected[1]["score"], atol=1e-5)
    assert pinned["outputs"]["label"] == expected[1]["label"].tolist()

    newest = out["lists"]
    assert newest["model_spec"]["version"] == 2
    np.testing.assert_allclose(newest["outputs"]["score"], expected[2]["score"], atol=1e-5)

    half = np.full(len(X), 0.5, np.float32)
    direct = ModelServerClient(server.target).predict("churn", 2, {"x": half, "y": half})
    np.testing.assert_allclose(out["broadcast"]["outputs"]["score"], direct["score"], atol=1e-5)

    meta = out["metadata"]
    assert meta["unpacked"] is True
    assert meta["type_url"] == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    assert meta["model_spec"] == {"name": "churn", "version": 2}
    assert meta["method_name"] == "tensorflow/serving/predict"
    assert meta["inputs"] == {"x": {"dtype": "float32", "shape": [-1]}, "y": {"dtype": "float32", "shape": [-1]}}
    assert meta["outputs"] == {"score": "float32", "label": "int64"}
    assert out["unknown_model"] == "NOT_FOUND"


def test_prometheus_metrics(server, client):
    from urllib.request import urlopen

    client.predict("churn", None, {"x": X, "y": Y})
    with pytest.raises(ServingError):
        client.predict("churn", 99, {"x": X, "y": Y})
    with urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    # Labelled with the version the request resolved to; none for a version that is not there.
    assert 'mlbridge_server_requests_total{code="OK",method="Predict",model="churn",version="2"}' in text
    assert 'code="NOT_FOUND",method="Predict",model="churn",version=""' in text
    assert "mlbridge_server_request_seconds_bucket" in text
