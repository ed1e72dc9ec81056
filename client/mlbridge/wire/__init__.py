"""Generated from proto/mlbridge/wire/ by tools/gen_proto.sh: do not edit.

TF Serving's messages under our own packages (mlbridge.wire, and
mlbridge.wire.serving for ModelService's), wire-compatible with the
tensorflow.* ones, so they can be imported next to TensorFlow. The services in
prediction_service_pb2 and model_service_pb2 keep TF Serving's full names
(tensorflow.serving.PredictionService, tensorflow.serving.ModelService), so a
process cannot import both one of them and its tensorflow_serving.apis
counterpart (the _pb2_grpc modules alone do not register the services).
"""
