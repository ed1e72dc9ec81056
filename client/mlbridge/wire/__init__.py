"""Generated from proto/mlbridge/wire/ by tools/gen_proto.sh: do not edit.

TF Serving's messages under our own packages (mlbridge.wire, and
mlbridge.wire.serving for ModelService's), wire-compatible with the
tensorflow.* ones, so they can be imported next to TensorFlow. The services in
prediction_service_pb2 and model_service_pb2 keep TF Serving's full names
(tensorflow.serving.PredictionService, tensorflow.serving.ModelService), so a
process cannot import both one of them and its tensorflow_serving.apis
counterpart (the _pb2_grpc modules alone do not register the services).

The Open Inference Protocol (KServe v2 gRPC) follows the same pattern: its
messages live in mlbridge.wire.inference (open_inference_pb2), wire-compatible
with KServe's grpc_predict_v2.proto and Triton's grpc_service.proto, and its
service in open_inference_service_pb2 keeps the protocol's full name,
inference.GRPCInferenceService, which the method paths are made of
(/inference.GRPCInferenceService/ModelInfer), so that tritonclient, MLServer
and KServe clients reach our server and our client reaches theirs. That
_pb2 cannot share a process with tritonclient.grpc.service_pb2 or
mlserver.grpc.dataplane_pb2, which register the same service name.
"""
