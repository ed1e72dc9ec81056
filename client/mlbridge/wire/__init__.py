"""Generated from proto/mlbridge/wire/ by tools/gen_proto.sh: do not edit.

TF Serving's messages under our own package (mlbridge.wire), wire-compatible
with the tensorflow.* ones, so they can be imported next to TensorFlow. The
service in prediction_service_pb2 keeps TF Serving's full name
(tensorflow.serving.PredictionService), so a process cannot import both it and
tensorflow_serving.apis.prediction_service_pb2 (prediction_service_pb2_grpc
alone does not register the service).
"""
