"""Start and stop the model server: `python -m mlbridge_server.serving`."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mlbridge.errors import MlbridgeError
from mlbridge.serving_security import add_server_arguments, server_options

from . import metrics as metrics_module
from . import model_config
from .handlers import Handlers
from .registry import ModelRegistry
from .security import TokenInterceptor, server_credentials
from .service import add_to_server

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
SERVICE_NAMES = (
    "tensorflow.serving.PredictionService",
    "tensorflow.serving.ModelService",
    "mlbridge.wire.ModelCatalog",
)


class ModelServer:
    """The gRPC server over one model base. start() binds the port and loads
    the newest version of every model before it returns; stop() drains
    running requests for up to ``grace`` seconds.

    ``host`` defaults to the loopback interface; the metrics follow it unless
    ``metrics_host`` is given. ``tls_cert``/``tls_key`` (PEM files) serve TLS,
    ``tls_client_ca`` also requires client certificates it signed; ``token``
    requires ``authorization: Bearer <token>`` on every call but the health
    checks (see security.py)."""

    def __init__(
        self,
        model_base: str,
        port: int = 8500,
        host: str = "127.0.0.1",
        poll_interval: float = 2.0,
        metrics_port: int | None = None,
        max_workers: int = 16,
        keep_older: int = 2,
        model_config_file: str | None = None,
        metrics_host: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
        token: str | None = None,
    ):
        self.model_base = os.path.abspath(model_base)
        # Read before anything binds: a bad config file stops the start (ConfigError).
        models = (
            model_config.load_file(model_config_file, self.model_base)
            if model_config_file
            else None
        )
        self.host = host
        self.metrics_host = metrics_host or host
        # Read now: a missing or unreadable file fails at start, not at the first call.
        self.credentials = server_credentials(tls_cert, tls_key, tls_client_ca)
        self.mtls = bool(tls_client_ca)
        self.token = token
        self.requested_port = port
        self.port: int | None = None
        self.poll_interval = poll_interval
        self.metrics_port = metrics_port
        self.max_workers = max_workers
        self.registry = ModelRegistry(self.model_base, keep_older=keep_older, models=models)
        self.health = health.HealthServicer()
        self._server: grpc.Server | None = None

    def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def start(self) -> int:
        """Bind, load the models, and report SERVING; returns the bound port
        (useful with port 0)."""
        # TensorFlow's import (a few seconds) happens here rather than in the
        # first request; servable sets TF_CPP_MIN_LOG_LEVEL before it.
        from . import servable  # noqa: F401

        if not os.path.isdir(self.model_base):
            log.warning("model base %s does not exist (yet): polling for it", self.model_base)
        recorder = metrics_module.start(self.metrics_port, self.metrics_host)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="grpc"),
            interceptors=[TokenInterceptor(self.token)] if self.token else None,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # gRPC sets SO_REUSEPORT by default on Linux: a second server
                # on a taken port would start without error and share it.
                ("grpc.so_reuseport", 0),
            ],
        )
        # Batching's settings come from $MLBRIDGE_SERVING_*BATCH* (batching.py);
        # the recorder gets batch sizes and queue delays when it records them.
        add_to_server(server, Handlers(self.registry, recorder=recorder), recorder)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.host}:{self.requested_port}"
        try:
            if self.credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, self.credentials)
        except RuntimeError as e:
            raise MlbridgeError(f"cannot listen on {address}: {e} (is the port in use?)") from None
        if not self.port:
            raise MlbridgeError(f"cannot listen on {address} (is the port in use?)")
        server.start()
        self._server = server
        if not _loopback(self.host) and self.credentials is None and not self.token:
            log.warning(
                "listening on %s without TLS or a token: anyone who reaches the port can use "
                "every model (see --tls-cert, --token-file)",
                self.host,
            )
        log.info(
            "listening on %s:%d (%s%s), model base %s",
            self.host,
            self.port,
            ("mTLS" if self.mtls else "TLS") if self.credentials else "plaintext",
            ", bearer token" if self.token else "",
            self.model_base,
        )

        self.registry.scan()
        self.registry.start(self.poll_interval)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        loaded = [f"{s.name}:{s.version}" for s in self.registry.statuses() if s.latest]
        log.info("serving %s", ", ".join(loaded) if loaded else "no models yet")
        return self.port

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        self.registry.stop()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _write_ready_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"port": port, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def serve(model_base: str, ready_file: str | None = None, **options) -> None:
    """Serve the models under ``model_base`` until SIGINT or SIGTERM.

    ``options`` are ModelServer's (port, host, model_config_file, TLS, token, ...);
    ``port`` 0 picks a free port. ``ready_file``, when given, is written once
    the port is bound and the first scan has loaded the models, as JSON
    {"port": N, "pid": P}, and removed at exit: launchers and tests wait on it.
    """
    server = ModelServer(model_base, **options)
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    try:
        bound = server.start()
        if ready_file:
            _write_ready_file(ready_file, bound)
        while not stopping.wait(1.0):
            pass
        log.info("stopping")
    finally:
        server.stop()
        if ready_file:
            try:
                os.remove(ready_file)
            except FileNotFoundError:
                pass
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlbridge_server.serving",
        description="Serve the SavedModels of a model base (BASE/NAME/VERSION/) "
        "over TensorFlow Serving's gRPC API.",
    )
    parser.add_argument(
        "--model-base",
        default=os.environ.get("MLBRIDGE_MODEL_BASE", "models"),
        help="folder of models, NAME/VERSION/saved_model.pb (default: $MLBRIDGE_MODEL_BASE or ./models)",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between scans")
    add_server_arguments(parser)
    parser.add_argument("--ready-file", default=None, help="written once the server is ready")
    parser.add_argument(
        "--model-config-file",
        default=None,
        help="TF Serving's ModelServerConfig in text format: which models, their base paths "
        "(relative to the model base, or absolute), version policies and labels",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(
            args.model_base,
            port=args.port,
            poll_interval=args.poll_interval,
            ready_file=args.ready_file,
            model_config_file=args.model_config_file,
            **server_options(args),
        )
    except MlbridgeError as e:
        log.error("%s", e)
        return 1
    return 0
