"""The model config (TF Serving's ModelServerConfig in text format) and the
version policies it sets, on the registry with a fake loader (no TensorFlow);
ModelService's handlers on messages."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from mlbridge.wire import (
    error_codes_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
)
from mlbridge_server.serving import model_config
from mlbridge_server.serving.errors import RequestError
from mlbridge_server.serving.model_service import ModelServiceHandlers
from mlbridge_server.serving.registry import ModelRegistry

from .test_registry import FakeLoader, add_version, states

State = get_model_status_pb2.ModelVersionStatus.State


def configured(base: Path, text: str) -> ModelRegistry:
    from mlbridge.wire import get_model_metadata_pb2

    models = model_config.entries(model_config.parse_text(text), str(base))
    reg = ModelRegistry(
        str(base), loader=FakeLoader(), models=models,
        signature_reader=lambda path: get_model_metadata_pb2.SignatureDefMap(),
    )
    reg.scan()
    return reg


def config_text(policy: str = "", labels: str = "", name: str = "churn", base_path: str = "") -> str:
    return f"""
    model_config_list {{
      config {{
        name: "{name}"
        base_path: "{base_path or name}"
        model_platform: "tensorflow"
        {f"model_version_policy {{ {policy} }}" if policy else ""}
        {labels}
      }}
    }}
    """


@pytest.fixture
def base(tmp_path):
    for version in (1, 2, 3):
        add_version(tmp_path, "churn", version)
    add_version(tmp_path, "other", 1)
    return tmp_path


def test_latest_policy_serves_the_newest_versions_only(base):
    reg = configured(base, config_text("latest { num_versions: 2 }"))
    assert states(reg, "churn") == {("churn", 1): "UNLOADED", ("churn", 2): "AVAILABLE",
                                    ("churn", 3): "AVAILABLE*"}
    with pytest.raises(RequestError) as info:
        reg.resolve("churn", 1)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "latest {num_versions: 2}" in info.value.message and "serves 2, 3" in info.value.message
    # a model left out of the config is not served, though it is in the model base
    with pytest.raises(RequestError) as info:
        reg.resolve("other", None)
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "model config" in info.value.message


def test_all_and_specific_policies(base):
    reg = configured(base, config_text("all {}"))
    assert {v for (_, v), s in states(reg, "churn").items() if s.startswith("AVAILABLE")} == {1, 2, 3}
    reg = configured(base, config_text("specific { versions: [1, 2] }"))
    assert states(reg, "churn") == {("churn", 1): "AVAILABLE", ("churn", 2): "AVAILABLE*",
                                    ("churn", 3): "UNLOADED"}
    assert reg.resolve("churn", None).version == 2


def test_labels_name_versions(base):
    reg = configured(base, config_text(
        "all {}", 'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 }'
    ))
    assert reg.version_for_label("churn", "stable") == 1
    with pytest.raises(RequestError) as info:
        reg.version_for_label("churn", "beta")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert '"beta"' in info.value.message and '"canary", "stable"' in info.value.message


def test_base_path_absolute_or_under_the_model_base(base, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    add_version(elsewhere, "m", 7)
    reg = configured(base, config_text(name="renamed", base_path=str(elsewhere / "m")))
    assert states(reg) == {("renamed", 7): "AVAILABLE*"}


def test_reconfigure_unloads_what_the_new_policy_drops(base):
    reg = configured(base, config_text("all {}"))
    handlers = ModelServiceHandlers(reg)
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(model_config.parse_text(config_text("specific { versions: [2] }")))
    assert handlers.reload_config(request).status.error_code == error_codes_pb2.OK
    status = handlers.get_model_status(
        get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="churn"))
    )
    assert {s.version: s.state for s in status.model_version_status} == {
        1: State.END, 2: State.AVAILABLE, 3: State.END
    }


def test_model_status_of_one_version_and_of_unknown_ones(base):
    reg = configured(base, config_text("latest { num_versions: 1 }", 'version_labels { key: "s" value: 3 }'))
    handlers = ModelServiceHandlers(reg)

    def status(**spec):
        return handlers.get_model_status(
            get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(**spec))
        )

    # version 1 and 2 were never served: not listed, as TF Serving does
    assert [(s.version, s.state) for s in status(name="churn").model_version_status] == [
        (3, State.AVAILABLE)
    ]
    assert status(name="churn", version_label="s").model_version_status[0].version == 3
    for spec in ({"name": "nope"}, {"name": "churn", "version": {"value": 9}},
                 {"name": "churn", "version_label": "nope"}):
        with pytest.raises(RequestError) as info:
            status(**spec)
        assert info.value.code == grpc.StatusCode.NOT_FOUND, spec


def test_failed_version_is_end_with_its_error(tmp_path):
    add_version(tmp_path, "churn", 1, broken=True)
    reg = configured(tmp_path, config_text())
    status = ModelServiceHandlers(reg).get_model_status(
        get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="churn"))
    ).model_version_status[0]
    assert status.state == State.END
    assert status.status.error_code == error_codes_pb2.UNKNOWN
    assert "cannot parse saved_model.pb" in status.status.error_message


@pytest.mark.parametrize(
    "text, problem",
    [
        ("model_config_list { config { name: 'a' base_path: 'a' bogus: 1 } }", 'no field named "bogus"'),
        ("model_config_list { config { base_path: 'a' } }", "name is required"),
        ("model_config_list { config { name: 'a' } config { name: 'a' } }", "configured twice"),
        ("model_config_list { config { name: 'a' model_platform: 'pytorch' } }", '"pytorch"'),
        ("model_config_list { config { name: 'a' model_version_policy { specific {} } } }",
         "lists no versions"),
        ("model_config_list { config { name: 'a' model_version_policy { specific { versions: 1 } }"
         " version_labels { key: 'x' value: 2 } } }", 'label "x" names version 2'),
        ("custom_model_config { }", "custom_model_config is not supported"),
    ],
)
def test_bad_configs_are_refused_naming_the_problem(tmp_path, text, problem):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(model_config.ConfigError) as info:
        model_config.load_file(str(path), str(tmp_path))
    assert problem in str(info.value) and str(path) in str(info.value)


def test_reload_with_a_bad_config_keeps_the_old_one(base):
    reg = configured(base, config_text())
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="churn", model_platform="onnx")
    with pytest.raises(RequestError) as info:
        ModelServiceHandlers(reg).reload_config(request)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and '"onnx"' in info.value.message
    assert reg.resolve("churn", None).version == 3


def test_without_a_config_older_versions_are_start_loaded_on_demand(base):
    from .test_registry import registry

    reg = registry(base)
    reg.scan()
    handlers = ModelServiceHandlers(reg)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="churn"))
    assert {s.version: s.state for s in handlers.get_model_status(request).model_version_status} == {
        1: State.START, 2: State.START, 3: State.AVAILABLE
    }
    with pytest.raises(RequestError) as info:
        reg.version_for_label("churn", "stable")
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "--model-config-file" in info.value.message
