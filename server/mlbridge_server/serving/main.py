"""Start and stop the model server: `python -m mlbridge_server.serving`, the same command line
as `mlbridge serve` (both built by mlbridge.serving_settings.add_arguments)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import threading
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mlbridge import log_format
from mlbridge.errors import MlbridgeError
from mlbridge.serving_constants import HEALTH_SERVICE, message_size_options
from mlbridge.serving_settings import ServerSettings, add_arguments

# Imported for their file descriptors alone: server reflection answers from the default
# descriptor pool, and the *_pb2_grpc modules import the messages' files, not the services'.
from mlbridge.wire import (  # noqa: F401
    model_catalog_pb2,
    model_service_pb2,
    open_inference_service_pb2,
    prediction_service_pb2,
)

from . import call_context, model_config, tensorflow_env
from . import metrics as metrics_module
from .batching import BatchingSettings
from .config_watch import ConfigWatcher
from .decoding import DecodeInterceptor
from .handlers import Handlers
from .health import ServerHealth
from .in_process import InProcessModels
from .limits import RequestLimits
from .loader import ModelProcesses
from .registry import ModelRegistry
from .security import TokenInterceptor, server_credentials
from .service import add_to_server

log = logging.getLogger(__name__)


class ModelServer:
    """The gRPC server over one model base. start() binds the port and loads
    the newest version of every model before it returns; stop() drains
    running requests for up to ``settings.shutdown_grace`` seconds.

    ``ModelServer(settings)`` with a ServerSettings, or keywords that replace its
    fields: ``ModelServer(model_base="models", port=0)``, ``ModelServer("models", port=0)``.
    The host defaults to the loopback interface; the metrics follow it unless
    ``metrics_host`` is given. ``tls_cert``/``tls_key`` (PEM files) serve TLS,
    ``tls_client_ca`` also requires client certificates it signed; ``token``
    requires ``authorization: Bearer <token>`` on every call but the health
    checks (see security.py)."""

    def __init__(self, settings: ServerSettings | str | None = None, **overrides: Any):
        if isinstance(settings, (str, os.PathLike)):
            overrides = {"model_base": os.fspath(settings), **overrides}
            settings = None
        settings = (settings or ServerSettings()).replace(**overrides) if overrides else (
            settings or ServerSettings())
        self.settings = settings
        self.model_base = os.path.abspath(settings.model_base)
        # Read before anything binds: a bad config file stops the start (ConfigError).
        models = (
            model_config.load_file(settings.model_config_file, self.model_base)
            if settings.model_config_file
            else None
        )
        self.host = settings.host
        self.metrics_host = settings.metrics_host or settings.host
        # Read now: a missing or unreadable file fails at start, not at the first call.
        self.credentials = server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        self.mtls = bool(settings.tls_client_ca)
        self.token = settings.token
        self.port: int | None = None
        # Each loaded version runs in a model process of its own (loader.py), or with
        # model_isolation "none" in this process (in_process.py).
        threads = (settings.tensorflow_intra_op_parallelism, settings.tensorflow_inter_op_parallelism)
        self.versions: ModelProcesses | InProcessModels = (
            InProcessModels(tensorflow_threads=threads) if settings.model_isolation == "none"
            else ModelProcesses(tensorflow_threads=threads)
        )
        self.registry = ModelRegistry(
            self.model_base, keep_older=settings.keep_older, models=models,
            loader=self.versions.load, load_threads=settings.load_threads,
        )
        self.limits = RequestLimits(settings.max_request_elements, settings.max_request_bytes)
        self.health: ServerHealth | None = None
        self.services: tuple[str, ...] = ()
        self._server: grpc.Server | None = None
        self._config_watch: ConfigWatcher | None = None
        if settings.model_config_file and settings.model_config_file_poll_wait_seconds > 0:
            self._config_watch = ConfigWatcher(
                settings.model_config_file, self.model_base, self.registry,
                settings.model_config_file_poll_wait_seconds,
            )

    def start(self) -> int:
        """Bind, load the models, and report SERVING; returns the bound port
        (useful with port 0)."""
        # TensorFlow is imported now (seconds), not at the first load: here (model_isolation
        # "none"), or by the loader process, which inherits this environment. Model processes
        # log as this one does.
        tensorflow_env.prepare()
        self.versions.log_setup = (
            self.settings.log_format, logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )
        self.versions.start()

        settings = self.settings
        if not os.path.isdir(self.model_base):
            log.warning("model base %s does not exist (yet): polling for it", self.model_base)
        recorder = metrics_module.start(settings.metrics_port, self.metrics_host)
        recorder.watch(self.registry)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="grpc"),
            # The token is checked first: a caller without it learns nothing of message formats.
            interceptors=[
                *([TokenInterceptor(self.token, recorder)] if self.token else []),
                DecodeInterceptor(),
            ],
            options=[
                *message_size_options(),
                # gRPC sets SO_REUSEPORT by default on Linux: a second server
                # on a taken port would start without error and share it.
                ("grpc.so_reuseport", 0),
            ],
        )
        services = add_to_server(server, Handlers(
            self.registry, self.limits, BatchingSettings.from_settings(settings), recorder
        ), recorder)
        self.health = ServerHealth(services)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        self.registry.add_listener(lambda: self.health.update_models(self.registry.statuses()))
        self.services = (*services, HEALTH_SERVICE, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(self.services, server)
        address = f"{self.host}:{settings.port}"
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
        self.registry.start(settings.poll_interval)
        if self._config_watch is not None:
            self._config_watch.start()
        self.health.set_serving(True)
        loaded = [f"{s.name}:{s.version}" for s in self.registry.statuses() if s.latest]
        log.info("serving %s", ", ".join(loaded) if loaded else "no models yet")
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls (health NOT_SERVING, new calls refused), let the running ones
        finish for up to ``grace`` seconds (default: the shutdown_grace setting), then stop
        polling the model base."""
        grace = self.settings.shutdown_grace if grace is None else grace
        if self.health is not None:
            self.health.shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._config_watch is not None:
            self._config_watch.stop()
        self.registry.stop()
        self.versions.stop()


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


def serve(settings: ServerSettings | str | None = None, ready_file: str | None = None, **overrides: Any) -> None:
    """Serve the models until SIGINT or SIGTERM, then stop as ModelServer.stop() does: the
    calls running get up to shutdown_grace seconds to finish.

    ``settings``: a ServerSettings, or the model base (then ``overrides`` are the other
    settings, as for ModelServer); ``port`` 0 picks a free port. ``ready_file``, when given, is
    written once the port is bound and the first scan has loaded the models, as JSON
    {"port": N, "pid": P}, and removed at exit: launchers and tests wait on it.
    """
    server = ModelServer(settings, **overrides)
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
        log.info("stopping: running calls get up to %g s to finish", server.settings.shutdown_grace)
    finally:
        server.stop()
        if ready_file:
            try:
                os.remove(ready_file)
            except FileNotFoundError:
                pass
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("stopped")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings' flags and --ready-file (for launchers and tests)."""
    add_arguments(parser)
    parser.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)


def run(settings: ServerSettings, ready_file: str | None = None, verbose: bool = False) -> int:
    """Set up logging as the settings ask and serve; the exit status (1: could not start)."""
    handler = log_format.configure(settings.log_format, "DEBUG" if verbose else settings.log_level)
    handler.addFilter(call_context.CallFilter())
    if not verbose:  # TensorFlow's own Python chatter (asset writes, renamed inputs)
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        serve(settings, ready_file=ready_file)
    except (MlbridgeError, model_config.ConfigError) as e:
        text = str(e)
        log.error("%s", text if text.startswith("mlbridge:") else f"mlbridge: {text}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlbridge_server.serving",
        description="Serve the SavedModels of a model base (BASE/NAME/VERSION/) over TensorFlow "
        "Serving's gRPC API. The same flags as `mlbridge serve`; flags win over "
        "$MLBRIDGE_SERVING_* variables, which win over the settings file's [serving] section.",
    )
    parser.add_argument("--settings", metavar="PATH",
                        help="TOML settings file; its [serving] section (default: $MLBRIDGE_SETTINGS)")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    if args.settings:
        os.environ["MLBRIDGE_SETTINGS"] = os.path.abspath(args.settings)
    try:
        settings = ServerSettings.resolve(args)
    except MlbridgeError as e:
        parser.exit(2, f"{e}\n")
    return run(settings, ready_file=args.ready_file)
