"""TensorFlow Serving's own Python client against our server; prints JSON.

Run in a process of its own (see test_official_client.py): it imports
tensorflow_serving.apis, whose PredictionService has the same full name as
ours, so it must not share a process with mlbridge.wire.prediction_service_pb2.

    python official_client.py HOST:PORT MODEL VERSION '{"x": [...], "y": [...]}'
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
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


def main():
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
