"""Describe protobuf messages by field number, to compare ours with TF Serving's.

Importable (``describe``, ``MIRRORED``) and runnable: as a script it imports
our generated modules first, then TensorFlow and the tensorflow_serving.apis
messages into the same process, and prints JSON with TF Serving's side of
every mirrored message, a PredictRequest serialized by TF's own code, and
whether the imports coexisted. It runs in a process of its own because
tensorflow_serving.apis.prediction_service_pb2 cannot share one with ours.
"""

from __future__ import annotations

import base64
import json
import os
import sys

# (our name in mlbridge.wire, TF Serving's module, its name there)
MIRRORED = [
    ("TensorProto", "tensorflow.core.framework.tensor_pb2", "TensorProto"),
    ("TensorShapeProto", "tensorflow.core.framework.tensor_shape_pb2", "TensorShapeProto"),
    ("ModelSpec", "tensorflow_serving.apis.model_pb2", "ModelSpec"),
    ("PredictRequest", "tensorflow_serving.apis.predict_pb2", "PredictRequest"),
    ("PredictResponse", "tensorflow_serving.apis.predict_pb2", "PredictResponse"),
    ("GetModelMetadataRequest", "tensorflow_serving.apis.get_model_metadata_pb2", "GetModelMetadataRequest"),
    ("GetModelMetadataResponse", "tensorflow_serving.apis.get_model_metadata_pb2", "GetModelMetadataResponse"),
    ("SignatureDefMap", "tensorflow_serving.apis.get_model_metadata_pb2", "SignatureDefMap"),
    ("SignatureDef", "tensorflow.core.protobuf.meta_graph_pb2", "SignatureDef"),
    ("TensorInfo", "tensorflow.core.protobuf.meta_graph_pb2", "TensorInfo"),
    # ModelService and the model config (ours in mlbridge.wire.serving)
    ("GetModelStatusRequest", "tensorflow_serving.apis.get_model_status_pb2", "GetModelStatusRequest"),
    ("GetModelStatusResponse", "tensorflow_serving.apis.get_model_status_pb2", "GetModelStatusResponse"),
    ("ModelVersionStatus", "tensorflow_serving.apis.get_model_status_pb2", "ModelVersionStatus"),
    ("StatusProto", "tensorflow_serving.apis.status_pb2", "StatusProto"),
    ("ReloadConfigRequest", "tensorflow_serving.apis.model_management_pb2", "ReloadConfigRequest"),
    ("ReloadConfigResponse", "tensorflow_serving.apis.model_management_pb2", "ReloadConfigResponse"),
    ("Metric", "tensorflow_serving.apis.model_management_pb2", "Metric"),
    ("ModelServerConfig", "tensorflow_serving.config.model_server_config_pb2", "ModelServerConfig"),
    ("ModelConfigList", "tensorflow_serving.config.model_server_config_pb2", "ModelConfigList"),
    ("ModelConfig", "tensorflow_serving.config.model_server_config_pb2", "ModelConfig"),
    ("FileSystemStoragePathSourceConfig",
     "tensorflow_serving.config.file_system_storage_path_source_pb2", "FileSystemStoragePathSourceConfig"),
    ("LoggingConfig", "tensorflow_serving.config.logging_config_pb2", "LoggingConfig"),
    ("SamplingConfig", "tensorflow_serving.config.logging_config_pb2", "SamplingConfig"),
    ("PerTaskSamplingConfig", "tensorflow_serving.config.logging_config_pb2", "PerTaskSamplingConfig"),
    ("LogCollectorConfig", "tensorflow_serving.config.log_collector_config_pb2", "LogCollectorConfig"),
]

# (our enum, TF Serving's module, its name there)
MIRRORED_ENUMS = [
    ("error.Code", "tensorflow.core.protobuf.error_codes_pb2", "Code"),
    ("ModelVersionStatus.State", "tensorflow_serving.apis.get_model_status_pb2", "ModelVersionStatus.State"),
    ("ModelType", "tensorflow_serving.config.model_server_config_pb2", "ModelType"),
]

OUR_MODULES = [
    "mlbridge.wire.types_pb2",
    "mlbridge.wire.tensor_shape_pb2",
    "mlbridge.wire.tensor_pb2",
    "mlbridge.wire.meta_graph_pb2",
    "mlbridge.wire.model_pb2",
    "mlbridge.wire.predict_pb2",
    "mlbridge.wire.get_model_metadata_pb2",
    "mlbridge.wire.model_catalog_pb2",
    "mlbridge.wire.model_catalog_pb2_grpc",
    "mlbridge.wire.prediction_service_pb2_grpc",
    "mlbridge.wire.error_codes_pb2",
    "mlbridge.wire.status_pb2",
    "mlbridge.wire.get_model_status_pb2",
    "mlbridge.wire.model_server_config_pb2",
    "mlbridge.wire.model_management_pb2",
    "mlbridge.wire.model_service_pb2_grpc",
]

_PREFIXES = ("mlbridge.wire.serving.", "mlbridge.wire.", "tensorflow.serving.", "tensorflow.")


def short(full_name: str) -> str:
    """A message or enum name without its package, so both sides compare."""
    for prefix in _PREFIXES:
        if full_name.startswith(prefix):
            return full_name[len(prefix):]
    return full_name


def lookup(module, dotted: str):
    """A nested attribute: "ModelVersionStatus.State" in a _pb2 module."""
    value = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def describe(descriptor) -> dict:
    """{field number: its name, type, repetition, packing, type name, oneof}
    plus the nested messages, recursively."""
    fields = {}
    for f in descriptor.fields:
        fields[str(f.number)] = {
            "name": f.name,
            "type": f.type,
            "repeated": f.is_repeated,
            "packed": f.is_packed,
            "message": short(f.message_type.full_name) if f.message_type else None,
            "enum": short(f.enum_type.full_name) if f.enum_type else None,
            "oneof": f.containing_oneof.name if f.containing_oneof else None,
        }
    return {
        "fields": fields,
        "nested": {n.name: describe(n) for n in descriptor.nested_types},
    }


def describe_enum(descriptor) -> dict:
    return {v.name: v.number for v in descriptor.values}


def describe_service(descriptor) -> dict:
    return {
        m.name: {
            "path": f"/{descriptor.full_name}/{m.name}",
            "input": short(m.input_type.full_name),
            "output": short(m.output_type.full_name),
        }
        for m in descriptor.methods
    }


def main() -> None:
    import importlib

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in OUR_MODULES:  # ours first, TensorFlow after
        importlib.import_module(name)
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import model_service_pb2, predict_pb2, prediction_service_pb2

    from mlbridge.wire import predict_pb2 as our_predict_pb2

    out = {"messages": {}}
    for ours, module, theirs in MIRRORED:
        out["messages"][ours] = describe(getattr(importlib.import_module(module), theirs).DESCRIPTOR)
    out["DataType"] = describe_enum(types_pb2.DataType.DESCRIPTOR)
    out["service"] = describe_service(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"])
    out["model_service"] = describe_service(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"])
    out["enums"] = {
        ours: describe_enum(lookup(importlib.import_module(module), theirs).DESCRIPTOR)
        for ours, module, theirs in MIRRORED_ENUMS
    }
    # A config and a status in TF Serving's own classes, to parse as ours.
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    reload = model_management_pb2.ReloadConfigRequest()
    model = reload.config.model_config_list.config.add(name="m", base_path="/b", model_platform="tensorflow")
    model.model_version_policy.specific.versions.extend([1, 2])
    model.version_labels["stable"] = 2
    out["ts_reload"] = base64.b64encode(reload.SerializeToString()).decode()
    out["ts_config_text"] = str(reload.config)
    status = get_model_status_pb2.GetModelStatusResponse()
    item = status.model_version_status.add(version=3, state=get_model_status_pb2.ModelVersionStatus.END)
    item.status.error_code = 5
    item.status.error_message = "gone"
    out["ts_status"] = base64.b64encode(status.SerializeToString()).decode()
    assert model_server_config_pb2.ModelServerConfig  # imported beside ours

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.version.value = 3
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.5, -2.0]], dtype=np.float32)))
    request.inputs["s"].CopyFrom(tf.make_tensor_proto([b"a", b"bc"]))
    request.output_filter.append("score")
    out["ts_request"] = base64.b64encode(request.SerializeToString()).decode()
    # TensorFlow and our messages live side by side in this process.
    out["ours_usable"] = our_predict_pb2.PredictRequest(output_filter=["a"]).output_filter[0] == "a"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
