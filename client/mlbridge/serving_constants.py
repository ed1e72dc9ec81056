"""The names and sizes the model server and its clients must agree on, defined once.

Both packages import them from here: the light client (the bridge, `mlbridge`) and the model
server (`mlbridge_server.serving`). They are TensorFlow Serving's own, so that the same values
work against a stock TF Serving.
"""

from __future__ import annotations

# The signature a request without signature_name runs (TF Serving's and Keras' export default).
DEFAULT_SIGNATURE = "serving_default"
# The SavedModel's initialisation function: in signature_defs, never callable by a request.
INIT_OP_SIGNATURE = "__saved_model_init_op"

# GetModelMetadata: the one metadata field there is, and the type URL of its packed message.
# TF Serving's full name, so that its clients can Any.Unpack() it.
SIGNATURE_DEF_FIELD = "signature_def"
SIGNATURE_DEF_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"

# gRPC's default cap is 4 MB, which bulk batches exceed; the server and the client set both
# directions to this. A request over it is answered RESOURCE_EXHAUSTED by gRPC itself.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# The gRPC services the model server hosts (full names, as in method paths and health checks).
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
MODEL_CATALOG_SERVICE = "mlbridge.wire.ModelCatalog"
# The Open Inference Protocol's (KServe v2) service, as Triton and KServe name it.
INFERENCE_SERVICE = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"

DEFAULT_PORT = 8500


def message_size_options(limit: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel or server options that raise both message size caps to ``limit``."""
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
    ]
