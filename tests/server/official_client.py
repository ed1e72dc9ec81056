"""TensorFlow Serving's own Python client against our server; prints JSON.

Run in a process of its own (see test_official_client.py): it imports
tensorflow_serving.apis, whose PredictionService has the same full name as
ours, so it must not share a process with mlbridge.wire.prediction_service_pb2.

    python official_client.py HOST:PORT MODEL VERSION '{"x": [...], "y": [...]}'
    python official_client.py status HOST:PORT MODEL [VERSION | label:NAME]
    python official_client.py unimplemented HOST:PORT MODEL
    python official_client.py many '[["status", "HOST:PORT", "MODEL"], ["unimplemented", ...], ...]'

"status" asks ModelService.GetModelStatus; "unimplemented" calls Classify,
Regress and MultiInference and prints the code and message of each. "many"
runs several of those in turn and prints their answers as one JSON list: one
process (one TensorFlow import, seconds) for all of a test module's questions.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)


def predict(stub, model, inputs, version=None, signature="serving_default"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    response = stub.Predict(request, timeout=30)
    return {
        "outputs": {k: tf.make_ndarray(v).tolist() for k, v in response.outputs.items()},
        "model_spec": {
            "name": response.model_spec.name,
            "version": response.model_spec.version.value,
            "signature_name": response.model_spec.signature_name,
        },
    }


def status(target, model, which=None):
    """GetModelStatus: {"versions": [{version, state, error_code, error_message}]}
    or {"error": CODE, "details": ...}."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if which is not None and which.startswith("label:"):
        request.model_spec.version_label = which[len("label:"):]
    elif which is not None:
        request.model_spec.version.value = int(which)
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(target))
    try:
        response = stub.GetModelStatus(request, timeout=30)
    except grpc.RpcError as e:
        return {"error": e.code().name, "details": e.details()}
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    return {
        "versions": [
            {"version": s.version, "state": state_name(s.state),
             "error_code": s.status.error_code, "error_message": s.status.error_message}
            for s in response.model_version_status
        ]
    }


def unimplemented(target, model):
    """Classify, Regress and MultiInference: {method: [code, details]}."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    calls = {
        "Classify": (stub.Classify, classification_pb2.ClassificationRequest()),
        "Regress": (stub.Regress, regression_pb2.RegressionRequest()),
        "MultiInference": (stub.MultiInference, inference_pb2.MultiInferenceRequest()),
    }
    out = {}
    for method, (call, request) in calls.items():
        if hasattr(request, "model_spec"):
            request.model_spec.name = model
        try:
            call(request, timeout=30)
            out[method] = ["OK", ""]
        except grpc.RpcError as e:
            out[method] = [e.code().name, e.details()]
    return out


QUESTIONS = {"status": status, "unimplemented": unimplemented}


def main():
    if sys.argv[1] == "many":
        print(json.dumps([QUESTIONS[name](*args) for name, *args in json.loads(sys.argv[2])]))
        return
    if sys.argv[1] in QUESTIONS:
        print(json.dumps(QUESTIONS[sys.argv[1]](*sys.argv[2:])))
        return
    target, model, version, features = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    channel = grpc.insecure_channel(target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    out = {}

    # numpy arrays: make_tensor_proto sends them as tensor_content.
    out["arrays"] = predict(
        stub, model,
        {k: tf.make_tensor_proto(np.asarray(v, dtype=np.float32)) for k, v in features.items()},
        version=version,
    )
    # a python list with an explicit dtype.
    out["lists"] = predict(
        stub, model, {k: tf.make_tensor_proto(v, dtype=tf.float32) for k, v in features.items()}
    )
    # one value with a shape: float_val holds a single value the server broadcasts.
    n = len(next(iter(features.values())))
    out["broadcast"] = predict(
        stub, model, {k: tf.make_tensor_proto(0.5, dtype=tf.float32, shape=[n]) for k in features}
    )

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    unpacked = response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    out["metadata"] = {
        "unpacked": unpacked,
        "type_url": response.metadata["signature_def"].type_url,
        "model_spec": {"name": response.model_spec.name, "version": response.model_spec.version.value},
        "method_name": signature.method_name,
        "inputs": {
            k: {"dtype": tf.dtypes.as_dtype(v.dtype).name,
                "shape": [d.size for d in v.tensor_shape.dim]}
            for k, v in signature.inputs.items()
        },
        "outputs": {k: tf.dtypes.as_dtype(v.dtype).name for k, v in signature.outputs.items()},
    }

    try:
        predict(stub, "no_such_model", {})
        out["unknown_model"] = "OK"
    except grpc.RpcError as e:
        out["unknown_model"] = e.code().name

    print(json.dumps(out))


if __name__ == "__main__":
    main()
