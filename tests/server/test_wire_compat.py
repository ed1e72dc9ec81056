"""Our .proto messages against TensorFlow Serving's: same field numbers and
types, bytes that each side parses, and imports that coexist with TensorFlow."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlbridge import tensors
from mlbridge.wire import (
    error_codes_pb2,
    file_system_storage_path_source_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    log_collector_config_pb2,
    logging_config_pb2,
    meta_graph_pb2,
    model_management_pb2,
    model_pb2,
    model_server_config_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    status_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)

from .conftest import server_env
from .describe_protos import (
    MIRRORED,
    MIRRORED_ENUMS,
    describe,
    describe_enum,
    describe_service,
    lookup,
)

OURS = {
    "TensorProto": tensor_pb2.TensorProto,
    "TensorShapeProto": tensor_shape_pb2.TensorShapeProto,
    "ModelSpec": model_pb2.ModelSpec,
    "PredictRequest": predict_pb2.PredictRequest,
    "PredictResponse": predict_pb2.PredictResponse,
    "GetModelMetadataRequest": get_model_metadata_pb2.GetModelMetadataRequest,
    "GetModelMetadataResponse": get_model_metadata_pb2.GetModelMetadataResponse,
    "SignatureDefMap": get_model_metadata_pb2.SignatureDefMap,
    "SignatureDef": meta_graph_pb2.SignatureDef,
    "TensorInfo": meta_graph_pb2.TensorInfo,
    "GetModelStatusRequest": get_model_status_pb2.GetModelStatusRequest,
    "GetModelStatusResponse": get_model_status_pb2.GetModelStatusResponse,
    "ModelVersionStatus": get_model_status_pb2.ModelVersionStatus,
    "StatusProto": status_pb2.StatusProto,
    "ReloadConfigRequest": model_management_pb2.ReloadConfigRequest,
    "ReloadConfigResponse": model_management_pb2.ReloadConfigResponse,
    "Metric": model_management_pb2.Metric,
    "ModelServerConfig": model_server_config_pb2.ModelServerConfig,
    "ModelConfigList": model_server_config_pb2.ModelConfigList,
    "ModelConfig": model_server_config_pb2.ModelConfig,
    "FileSystemStoragePathSourceConfig":
        file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig,
    "LoggingConfig": logging_config_pb2.LoggingConfig,
    "SamplingConfig": logging_config_pb2.SamplingConfig,
    "PerTaskSamplingConfig": logging_config_pb2.PerTaskSamplingConfig,
    "LogCollectorConfig": log_collector_config_pb2.LogCollectorConfig,
}

OUR_ENUM_MODULES = {
    "error.Code": error_codes_pb2,
    "ModelVersionStatus.State": get_model_status_pb2,
    "ModelType": model_server_config_pb2,
}

# Fields of TF Serving's messages we leave out on purpose (see the .proto files).
OMITTED = {
    "TensorProto": {"14", "15"},  # resource_handle_val, variant_val
    "PredictRequest": {"5", "6", "7"},  # generative-model options
    "TensorInfo": {"5"},  # composite_tensor
}


@pytest.fixture(scope="module")
def theirs():
    """TF Serving's side, described in a process that imports ours, then
    TensorFlow and tensorflow_serving.apis."""
    script = Path(__file__).with_name("describe_protos.py")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=server_env()
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def test_every_mirrored_message_is_in_the_list():
    assert sorted(OURS) == sorted(m[0] for m in MIRRORED)


def _compare(ours: dict, theirs: dict, path: str, omitted: set[str]) -> list[str]:
    problems = []
    for number, field in ours["fields"].items():
        other = theirs["fields"].get(number)
        if other is None:
            problems.append(f"{path}: field {number} ({field['name']}) is not TF Serving's")
        elif field != other:
            problems.append(f"{path}: field {number}: ours {field} != theirs {other}")
    for number, field in theirs["fields"].items():
        if number not in ours["fields"] and number not in omitted:
            problems.append(f"{path}: TF Serving's field {number} ({field['name']}) is missing")
    for name, nested in ours["nested"].items():
        if name not in theirs["nested"]:
            problems.append(f"{path}.{name}: not in TF Serving's")
        else:
            problems += _compare(nested, theirs["nested"][name], f"{path}.{name}", set())
    return problems


@pytest.mark.parametrize("name", sorted(OURS))
def test_message_matches_tf_serving(theirs, name):
    problems = _compare(describe(OURS[name].DESCRIPTOR), theirs["messages"][name], name, OMITTED.get(name, set()))
    assert problems == []


def test_data_type_values_match(theirs):
    ours = describe_enum(types_pb2.DataType.DESCRIPTOR)
    for name, number in ours.items():
        assert theirs["DataType"][name] == number, name
    left_out = set(theirs["DataType"]) - set(ours)
    assert all(theirs["DataType"][name] > 100 for name in left_out), left_out  # the _REF types


def test_service_paths_and_types_match(theirs):
    ours = describe_service(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"])
    assert set(ours) == {"Predict", "GetModelMetadata"}
    for method, spec in ours.items():
        assert spec == theirs["service"][method]
    assert ours["Predict"]["path"] == "/tensorflow.serving.PredictionService/Predict"


@pytest.mark.parametrize("name", [e[0] for e in MIRRORED_ENUMS])
def test_enum_values_match(theirs, name):
    ours = describe_enum(lookup(OUR_ENUM_MODULES[name], name.removeprefix("error.")).DESCRIPTOR)
    assert ours == theirs["enums"][name]


def test_model_service_paths_and_types_match(theirs):
    ours = describe_service(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"])
    assert ours == theirs["model_service"]
    assert ours["GetModelStatus"]["path"] == "/tensorflow.serving.ModelService/GetModelStatus"


def test_tf_serving_config_and_status_parse_as_ours(theirs):
    from google.protobuf import text_format

    reload = model_management_pb2.ReloadConfigRequest.FromString(base64.b64decode(theirs["ts_reload"]))
    model = reload.config.model_config_list.config[0]
    assert (model.name, model.base_path, list(model.model_version_policy.specific.versions)) == (
        "m", "/b", [1, 2]
    )
    assert dict(model.version_labels) == {"stable": 2}
    # TF Serving's text format (a --model_config_file) is ours
    assert text_format.Parse(theirs["ts_config_text"], model_server_config_pb2.ModelServerConfig()) == reload.config
    status = get_model_status_pb2.GetModelStatusResponse.FromString(base64.b64decode(theirs["ts_status"]))
    item = status.model_version_status[0]
    assert item.state == get_model_status_pb2.ModelVersionStatus.END
    assert item.status.error_code == error_codes_pb2.NOT_FOUND and item.status.error_message == "gone"


def test_ours_and_tensorflow_in_one_process(theirs):
    # The script imported ours first and TensorFlow second; this process did
    # the opposite when it built the test models.
    import tensorflow as tf  # noqa: F401

    assert theirs["ours_usable"] is True
    assert predict_pb2.PredictRequest(output_filter=["a"]).SerializeToString()


def test_tf_serving_request_bytes_parse_as_ours(theirs):
    request = predict_pb2.PredictRequest.FromString(base64.b64decode(theirs["ts_request"]))
    assert request.model_spec.name == "m" and request.model_spec.version.value == 3
    assert list(request.output_filter) == ["score"]
    np.testing.assert_array_equal(
        tensors.from_tensor_proto(request.inputs["x"]), np.array([[1.5, -2.0]], np.float32)
    )
    assert tensors.from_tensor_proto(request.inputs["s"]).tolist() == [b"a", b"bc"]


# -- the tensor codec against TensorFlow's own --------------------------------


def _tf_cases():
    import tensorflow as tf

    return [
        tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3)),
        tf.make_tensor_proto(np.array([1.5, -2.25], dtype=np.float64)),
        tf.make_tensor_proto(np.array([-3, 0, 7], dtype=np.int32)),
        tf.make_tensor_proto(np.array([2**40, -1], dtype=np.int64)),
        tf.make_tensor_proto(np.array([-128, 5], dtype=np.int8)),
        tf.make_tensor_proto(np.array([255, 0], dtype=np.uint8)),
        tf.make_tensor_proto(np.array([65535, 1], dtype=np.uint16)),
        tf.make_tensor_proto(np.array([2**32 - 1], dtype=np.uint32)),
        tf.make_tensor_proto(np.array([2**64 - 1], dtype=np.uint64)),
        tf.make_tensor_proto(np.array([True, False, True])),
        tf.make_tensor_proto(np.array([0.5, -1.0], dtype=np.float16)),
        tf.make_tensor_proto(np.array([1 + 2j], dtype=np.complex64)),
        tf.make_tensor_proto(np.array([[1 - 2j, 3j]], dtype=np.complex128)),
        tf.make_tensor_proto(["héllo", "", "x"]),
        tf.make_tensor_proto(np.array(3.5, dtype=np.float32)),
        tf.make_tensor_proto(np.zeros((0, 3), dtype=np.float32)),
        # one value for a whole shape: the typed *_val fields, broadcast
        tf.make_tensor_proto(0.25, dtype=tf.float32, shape=[4]),
        tf.make_tensor_proto(7, dtype=tf.int64, shape=[2, 2]),
        tf.make_tensor_proto(5, dtype=tf.int8, shape=[3]),
        tf.make_tensor_proto(True, dtype=tf.bool, shape=[2]),
        tf.make_tensor_proto(1.5, dtype=tf.float16, shape=[2]),
        tf.make_tensor_proto(1 + 1j, dtype=tf.complex64, shape=[2]),
        tf.make_tensor_proto(b"ab", dtype=tf.string, shape=[3]),
    ]


def test_decode_what_tensorflow_encodes():
    import tensorflow as tf

    for proto in _tf_cases():
        ours = tensor_pb2.TensorProto.FromString(proto.SerializeToString())
        got = tensors.from_tensor_proto(ours)
        want = tf.make_ndarray(proto)
        assert got.shape == want.shape, proto
        assert got.dtype == want.dtype, proto
        np.testing.assert_array_equal(got, want)


def test_a_short_list_tensorflow_would_pad_is_refused():
    """tf.make_tensor_proto([1.0, 2.0], shape=[4]) sends two values that
    TensorFlow pads with the last one; mlbridge refuses it (the module doc of
    mlbridge.tensors says why): every value, or exactly one to fill the tensor."""
    import tensorflow as tf

    proto = tf.make_tensor_proto([1.0, 2.0], dtype=tf.float64, shape=[4])
    assert tf.make_ndarray(proto).tolist() == [1.0, 2.0, 2.0, 2.0]
    ours = tensor_pb2.TensorProto.FromString(proto.SerializeToString())
    with pytest.raises(tensors.TensorCodecError, match="double_val holds 2 values, shape \\[4\\]"):
        tensors.from_tensor_proto(ours)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(3, 2),
        np.array([1.5, -2.25]),
        np.array([2**40, -1]),
        np.array([1, 2], dtype=np.int32),
        np.array([True, False]),
        np.array([0.5], dtype=np.float16),
        np.array([1 + 2j], dtype=np.complex128),
        np.array(["a", "héllo"]),
        np.array([b"\x00\xff"], dtype=object),
        np.array(2.0, dtype=np.float32),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_tensorflow_decodes_what_we_encode(array):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2

    proto = tf_tensor_pb2.TensorProto.FromString(tensors.to_tensor_proto(array).SerializeToString())
    got = tf.make_ndarray(proto)
    if array.dtype.kind in "UO":
        assert got.tolist() == [s.encode() if isinstance(s, str) else s for s in array.tolist()]
    else:
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)
