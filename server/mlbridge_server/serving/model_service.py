"""TF Serving's ModelService on messages: GetModelStatus and HandleReloadConfigRequest.

The registry's states are reported as TF Serving's ManagerState, so that
scripts written for TF Serving (wait until the version is AVAILABLE) work:
loaded AVAILABLE, loading LOADING, failed END with the load error in status,
dropped by the version policy END. A version on disk that loads on demand
(without a model config) is START; one the policy never served is not listed,
as TF Serving does not list it.
"""

from __future__ import annotations

import grpc

from mlbridge.wire import error_codes_pb2, get_model_status_pb2, model_management_pb2

from . import model_config
from .errors import RequestError, invalid, not_found
from .handlers import requested_version
from .registry import ModelRegistry, VersionStatus

_State = get_model_status_pb2.ModelVersionStatus.State


def _state(status: VersionStatus) -> int | None:
    """TF Serving's state for a version, or None when it does not list it."""
    if status.state == "AVAILABLE":
        return _State.AVAILABLE
    if status.state == "LOADING":
        return _State.LOADING
    if status.state == "FAILED" or status.ended:
        return _State.END
    if status.served:
        return _State.START
    return None


class ModelServiceHandlers:
    """The two calls of ModelService, on protobuf messages."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        if not spec.name:
            raise invalid("model_spec.name is required")
        version = requested_version(self.registry, spec)
        listed = [
            (status, state)
            for status in self.registry.statuses(spec.name)
            if status.name == spec.name and (state := _state(status)) is not None
        ]
        if not listed:
            raise not_found(f'model "{spec.name}" not found: it has no version')
        if version is not None:
            chosen = [(s, st) for s, st in listed if s.version == version]
            if not chosen:
                versions = ", ".join(str(s.version) for s, _ in listed)
                raise not_found(
                    f'model "{spec.name}" has no version {version} (versions: {versions})'
                )
            listed = chosen
        response = get_model_status_pb2.GetModelStatusResponse()
        for status, state in listed:
            item = response.model_version_status.add(version=status.version, state=state)
            if status.state == "FAILED":
                item.status.error_code = error_codes_pb2.UNKNOWN
                item.status.error_message = status.error
            else:
                item.status.error_code = error_codes_pb2.OK
        return response

    def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        """Apply the config before answering, as TF Serving does; a config
        that does not check out is refused whole (INVALID_ARGUMENT) and the
        one in force stays."""
        if not request.HasField("config"):
            raise invalid("ReloadConfigRequest.config is required")
        try:
            models = model_config.entries(request.config, self.registry.base)
        except model_config.ConfigError as e:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"config refused: {e}") from None
        self.registry.configure(models)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = error_codes_pb2.OK
        return response
