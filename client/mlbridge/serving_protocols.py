"""Which protocol the bridge speaks to its model server.

``tfserving`` (the default): TensorFlow Serving's gRPC API, spoken by
``mlbridge serve`` and a stock TF Serving. ``v2``: the Open Inference Protocol
(KServe v2 gRPC), spoken by ``mlbridge serve`` too, and by Triton, MLServer,
KServe and OpenVINO Model Server. Chosen with ``--protocol`` or
$MLBRIDGE_SERVER_PROTOCOL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import MlbridgeError
from .serving_client import ClientSecurity, ModelServerClient

PROTOCOLS = ("tfserving", "v2")
DEFAULT_PROTOCOL = "tfserving"
ENV_PROTOCOL = "MLBRIDGE_SERVER_PROTOCOL"


def resolve_protocol(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The flag's protocol, else $MLBRIDGE_SERVER_PROTOCOL's, else tfserving; anything else
    is an error naming the choices."""
    environ = os.environ if environ is None else environ
    given = flag or environ.get(ENV_PROTOCOL, "").strip()
    if not given:
        return DEFAULT_PROTOCOL
    protocol = given.strip().lower()
    if protocol not in PROTOCOLS:
        source = "--protocol" if flag else f"${ENV_PROTOCOL}"
        raise MlbridgeError(
            f"mlbridge: {source}={given!r} is not a protocol: use tfserving (TF Serving's API) "
            "or v2 (the Open Inference Protocol of Triton, MLServer and KServe)"
        )
    return protocol


def open_client(protocol: str, target: str, timeout: float = 30.0, security: ClientSecurity | None = None):
    """The client of ``protocol`` for the model server at ``target``: a ModelServerClient or
    an InferenceClient, which have the same interface."""
    if protocol == "v2":
        from .v2_client import InferenceClient

        return InferenceClient(target, timeout=timeout, security=security)
    if protocol == "tfserving":
        return ModelServerClient(target, timeout=timeout, security=security)
    raise MlbridgeError(f"mlbridge: unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
