"""ModelService, the model config file and the PredictionService methods we
refuse, against the real server process; GetModelStatus and the refusals
through TF Serving's official client too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import wrappers_pb2

from mlbridge.serving_client import ModelServerClient
from mlbridge.tensors import from_tensor_proto, to_tensor_proto
from mlbridge.wire import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from mlbridge_server.serving import model_config

from .conftest import REPO, install_version, run_server, server_env, wait_until
from .models import call_directly

X = np.array([0.5, -1.0, 2.0], dtype=np.float32)
Y = np.array([1.5, 0.0, -3.0], dtype=np.float32)
State = get_model_status_pb2.ModelVersionStatus.State

CONFIG = """
model_config_list {
  config {
    name: "churn"
    base_path: "churn"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "text"
    base_path: "%(text)s"
    model_version_policy { latest { num_versions: 1 } }
  }
}
"""


@pytest.fixture(scope="module")
def base(saved_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("base")
    for version, source in ((1, "churn_v1"), (2, "churn_v2"), (3, "churn_v1")):
        install_version(base, "churn", version, saved_models[source])
    install_version(base, "text", 1, saved_models["text"])
    return base


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("server")
    config = workdir / "models.config"
    config.write_text(CONFIG % {"text": base / "text"})  # one relative base path, one absolute
    with run_server(base, workdir, 0.2, "--model-config-file", str(config)) as process:
        yield process


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as channel:
        yield channel


def official(*args: str) -> dict:
    script = Path(__file__).with_name("official_client.py")
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=180,
        env=server_env(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict(channel, **spec) -> dict:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="churn", **spec))
    request.inputs["x"].CopyFrom(to_tensor_proto(X))
    request.inputs["y"].CopyFrom(to_tensor_proto(Y))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return {"version": response.model_spec.version.value,
            "score": from_tensor_proto(response.outputs["score"])}


def status(channel, name="churn") -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=name))
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    return {s.version: s.state for s in response.model_version_status}


def reload(channel, text: str) -> None:
    request = model_management_pb2.ReloadConfigRequest(config=model_config.parse_text(text))
    response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
        request, timeout=120
    )
    assert response.status.error_code == 0, response.status.error_message


@pytest.fixture(scope="module")
def official_answers(server) -> dict[str, dict]:
    """The official client's answers to every question of this module, asked in one process (its
    TensorFlow import takes seconds), before any test changes the server's config."""
    questions = {
        "status": ["status", server.target, "churn"],
        "status canary": ["status", server.target, "churn", "label:canary"],
        "status 3": ["status", server.target, "churn", "3"],
        "status nope": ["status", server.target, "nope"],
        "unimplemented": ["unimplemented", server.target, "churn"],
    }
    return dict(zip(questions, official("many", json.dumps(list(questions.values())))))


def test_official_client_gets_model_status(official_answers):
    out = official_answers["status"]
    assert out == {"versions": [
        {"version": 1, "state": "AVAILABLE", "error_code": 0, "error_message": ""},
        {"version": 2, "state": "AVAILABLE", "error_code": 0, "error_message": ""},
    ]}
    assert official_answers["status canary"]["versions"][0]["version"] == 2
    assert official_answers["status 3"]["error"] == "NOT_FOUND"
    missing = official_answers["status nope"]
    assert missing["error"] == "NOT_FOUND" and '"nope"' in missing["details"]


def test_official_client_is_told_classify_regress_multiinference_are_not_served(official_answers):
    out = official_answers["unimplemented"]
    assert set(out) == {"Classify", "Regress", "MultiInference"}
    for method, (code, details) in out.items():
        assert code == "UNIMPLEMENTED", method
        assert f"{method} is not implemented" in details and "Predict" in details


def test_predict_by_label(channel, saved_models):
    stable = predict(channel, version_label="stable")
    assert stable["version"] == 1
    np.testing.assert_allclose(
        stable["score"], call_directly(saved_models["churn_v1"], x=X, y=Y)["score"], atol=1e-5
    )
    assert predict(channel, version_label="canary")["version"] == 2
    # no version: the newest the policy serves, not the newest on disk
    assert predict(channel)["version"] == 2
    with pytest.raises(grpc.RpcError) as info:
        predict(channel, version_label="beta")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and '"beta"' in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        predict(channel, version=wrappers_pb2.Int64Value(value=3))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "version policy" in info.value.details()


def test_list_models_lists_only_the_versions_the_policy_serves(server):
    # Version 3 is on disk, but the policy serves 1 and 2: the bridge's catalog
    # must not offer it to SQL callers.
    with ModelServerClient(server.target, timeout=30) as client:
        listed = {m.version: m.state for m in client.list_models("churn")}
    assert listed == {1: "AVAILABLE", 2: "AVAILABLE"}


def test_reload_config_switches_policy_at_run_time(channel, base):
    assert status(channel) == {1: State.AVAILABLE, 2: State.AVAILABLE}
    reload(channel, 'model_config_list { config { name: "churn" base_path: "churn" '
                    "model_version_policy { latest { num_versions: 1 } } } }")
    assert status(channel) == {1: State.END, 2: State.END, 3: State.AVAILABLE}
    assert predict(channel)["version"] == 3
    with pytest.raises(grpc.RpcError) as info:
        predict(channel, version_label="stable")  # the new config has no labels
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        status(channel, "text")  # left out of the new config: unloaded
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    reload(channel, 'model_config_list { config { name: "churn" model_version_policy { all {} } } }')
    assert status(channel) == {1: State.AVAILABLE, 2: State.AVAILABLE, 3: State.AVAILABLE}

    with pytest.raises(grpc.RpcError) as info:
        reload(channel, 'model_config_list { config { name: "churn" model_platform: "onnx" } }')
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and '"onnx"' in info.value.details()
    assert status(channel) == {1: State.AVAILABLE, 2: State.AVAILABLE, 3: State.AVAILABLE}


def test_bad_config_file_stops_the_server_naming_the_problem(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "churn" model_version_policy { newest {} } } }')
    done = subprocess.run(
        [sys.executable, "-m", "mlbridge_server.serving", "--model-base", str(tmp_path),
         "--port", "0", "--host", "127.0.0.1", "--model-config-file", str(config)],
        capture_output=True, text=True, timeout=120, env=server_env(), cwd=REPO,
    )
    assert done.returncode == 1
    assert str(config) in done.stderr and '"newest"' in done.stderr, done.stderr[-2000:]


def test_config_file_is_polled_and_a_broken_one_is_not_applied(saved_models, tmp_path):
    base = tmp_path / "base"
    for version, source in ((1, "churn_v1"), (2, "churn_v2")):
        install_version(base, "churn", version, saved_models[source])
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "churn" base_path: "churn" '
                      "model_version_policy { specific { versions: 1 } } } }")
    with run_server(base, tmp_path, 0.2, "--model-config-file", str(config),
                    "--model-config-file-poll-wait-seconds", "0.2") as server, \
            grpc.insecure_channel(server.target) as channel:
        assert status(channel) == {1: State.AVAILABLE}
        config.write_text('model_config_list { config { name: "churn" base_path: "churn" '
                          "model_version_policy { all {} } } }")
        wait_until(lambda: status(channel) == {1: State.AVAILABLE, 2: State.AVAILABLE},
                   what="the changed file applied")
        config.write_text('model_config_list { config { name: "churn" model_platform: "onnx" } }')
        wait_until(lambda: "is not applied" in server.output(), what="the broken file reported")
        assert '"onnx"' in server.output()
        assert status(channel) == {1: State.AVAILABLE, 2: State.AVAILABLE}
        assert predict(channel)["version"] == 2
