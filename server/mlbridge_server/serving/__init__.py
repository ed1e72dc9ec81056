"""The model server: TensorFlow Serving's gRPC API over a folder of SavedModels.

    from mlbridge_server.serving import serve
    serve("models", port=8500)            # or serve(ServerSettings(...))

Modules: modelbase (the folder layout), registry (what is loaded, hot reload),
servable (one loaded SavedModel, on TensorFlow), handlers (Predict,
GetModelMetadata, ListModels on messages), model_config (a ModelServerConfig
checked: models, base paths, version policies, labels), model_service
(GetModelStatus, HandleReloadConfigRequest on messages), service (the gRPC
servicers), security (TLS credentials, the bearer-token interceptor), health
(gRPC health per server, service and model), metrics (Prometheus, per model
and version), call_context (the model and version a call resolved to, for
metrics and logs), main (start, stop, the command line; the settings are
mlbridge.serving_settings.ServerSettings). TensorFlow is imported when the server
starts, not when this package is.
"""

from .main import ModelServer, serve

__all__ = ["ModelServer", "serve"]
