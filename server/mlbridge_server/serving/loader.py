"""Model processes, seen from the front: starting them and calling them.

With ``model_isolation = "process"``, each loaded version runs in a model
process of its own (model_process.py), forked by a loader process:
multiprocessing's forkserver, started once with TensorFlow and ydf_tf imported
(its preload). The front holds a RemoteServable per version, with the interface
of an in-process Servable (name, version, signature_defs, run), and never
imports TensorFlow. (The default, model_isolation "none", loads versions in the
front: in_process.py.)

What processes give: a model that crashes its process (a bad custom op, the OOM
killer) takes only its own version down, and the next scan loads it again; a load
that hangs is ended after LOAD_TIMEOUT_SECONDS; a version's process exits when it
is unloaded, and all of its memory goes with it, whatever TensorFlow's allocators
keep (with oneDNN on, its pool keeps a version's worth: tensorflow_env.py).

What it costs: each call crosses a socket pair each way (model_channel.py:
one write a message, the arrays' bytes out of band; 0.2-0.5 ms for a 1,024-row
batch of 8 features here, most of it the two wake-ups), and each loaded
version has a process (its private memory is the model's; the TensorFlow
library pages are shared with the loader process).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from typing import Any

from mlbridge.wire import get_model_metadata_pb2

from .errors import unavailable
from .model_channel import Channel

log = logging.getLogger(__name__)

PRELOAD = "mlbridge_server.serving.model_process"
# Requests one model process runs at the same time (one thread and one pipe
# each). Two batch threads plus unbatched calls fit; TensorFlow's own thread
# pools share the cores beneath them.
REQUEST_THREADS = 4
# An unloaded version's process lives on this long after the last request it
# was running: a request that resolved the version just before it was
# unloaded still finds it. Then it exits.
LINGER_SECONDS = 5.0
STOP_SECONDS = 10.0
# A load that takes longer is given up on and reported FAILED (its model process ended).
LOAD_TIMEOUT_SECONDS = 600.0


class ModelError(Exception):
    """A signature failed on the inputs it was given (TensorFlow's message)."""


class ModelProcesses:
    """Starts model processes. ``start()`` starts the loader process, which
    imports TensorFlow (seconds); each ``load()`` then forks a process."""

    def __init__(
        self,
        load_timeout: float = LOAD_TIMEOUT_SECONDS,
        request_threads: int = REQUEST_THREADS,
        tensorflow_threads: tuple[int, int] = (0, 0),
    ):
        self.load_timeout = load_timeout
        self.request_threads = request_threads
        # (intra-op, inter-op) threads of each model process's TensorFlow; 0: TensorFlow's choice.
        self.tensorflow_threads = tensorflow_threads
        # (format, level) of the model processes' logs: the front's, set once it has set up its
        # own (ModelServer.start); None leaves a model process's logging as Python starts it.
        self.log_setup: tuple[str, str] | None = None
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload([PRELOAD])
        self._lock = threading.Lock()
        self._live: set[RemoteServable] = set()

    def start(self) -> None:
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def load(self, name: str, version: int, path: str) -> RemoteServable:
        """Load a version in a new process and wait until it is ready; raises
        the load's error (its first line is what status and logs show)."""
        from . import model_entry

        control, control_child = self._ctx.Pipe()
        pipes = [self._ctx.Pipe() for _ in range(self.request_threads)]
        process = self._ctx.Process(
            target=model_entry.serve,
            args=(name, version, path, control_child, [child for _, child in pipes],
                  self.tensorflow_threads, self.log_setup),
            name=f"mlbridge-model {name}:{version}",
            daemon=True,
        )
        process.start()
        # Only the model process holds these ends now: when it dies, ours read EOF.
        control_child.close()
        for _, child in pipes:
            child.close()
        conns = [parent for parent, _ in pipes]

        def abandon(error: Exception) -> Exception:
            """End the process and our pipes; the load's error to raise."""
            _end(process)
            for conn in (control, *conns):
                conn.close()
            return error

        try:
            if not control.poll(self.load_timeout):
                raise abandon(TimeoutError(f"loading took more than {self.load_timeout:g} s"))
            message = control.recv()
        except (EOFError, OSError):
            _end(process)  # first: its exit code goes into the message
            raise abandon(RuntimeError(
                f"the model process ended while loading (exit code {process.exitcode})"
            )) from None
        if message[0] != "ready":
            process.join(STOP_SECONDS)  # it exits by itself once it has said why
            raise abandon(RuntimeError(message[1]))
        signature_defs = get_model_metadata_pb2.SignatureDefMap.FromString(message[1])
        servable = RemoteServable(
            name, version, path, signature_defs, process, control, conns, self._forget,
            facts=message[3],
        )
        with self._lock:
            self._live.add(servable)
        return servable

    def _forget(self, servable: RemoteServable) -> None:
        with self._lock:
            self._live.discard(servable)

    def stop(self) -> None:
        """Stop every model process (after the gRPC server has drained)."""
        with self._lock:
            live = list(self._live)
        for servable in live:
            servable.stop_now()


def facts_text(facts: dict[str, Any]) -> str:
    """How a version runs (model_process.facts), as the load's log line words it after where."""
    text = ""
    if "intra_op_threads" in facts:
        # 0: TensorFlow's choice
        text += (f", TensorFlow threads: intra-op {facts['intra_op_threads'] or 'auto'}, "
                 f"inter-op {facts['inter_op_threads'] or 'auto'}")
    if "onednn" in facts:
        text += ", oneDNN " + ("on" if facts["onednn"] else "off")
    if facts.get("flat_calls"):
        text += ", flat call for " + ", ".join(facts["flat_calls"])
    return text


def _end(process: Any) -> None:
    """Make sure a model process is gone: asked, then terminated, then killed."""
    process.join(0.1)
    if process.exitcode is None:
        process.terminate()
        process.join(STOP_SECONDS)
    if process.exitcode is None:
        process.kill()
        process.join(STOP_SECONDS)


class RemoteServable:
    """A version loaded in a model process. ``run`` is thread-safe; up to
    REQUEST_THREADS calls run at once and the others wait for a pipe."""

    def __init__(
        self,
        name: str,
        version: int,
        path: str,
        signature_defs: get_model_metadata_pb2.SignatureDefMap,
        process: Any,
        control: Any,
        conns: list[Any],
        on_stopped: Any,
        facts: dict[str, Any] | None = None,
    ):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        self._process = process
        self._control = control
        # Calls take a free request connection, as a Channel on its descriptor
        # (the Connection keeps owning it, and closes it).
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for conn in conns:
            self._free.put(Channel(conn.fileno()))
        self._conns = conns
        self._on_stopped = on_stopped
        self._lock = threading.Lock()
        self._running = 0
        self._closing = False
        self._linger_over = False
        self._stopped = False
        # How the process runs the version (model_process.facts), for the log.
        self.facts: dict[str, Any] = facts or {}

    def describe(self) -> str:
        """The model process, for the line that says the version loaded."""
        return f"model process {self.pid}" + facts_text(self.facts)

    def __repr__(self) -> str:
        return f"RemoteServable({self.name!r}, {self.version}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """False once the process has ended without being asked to."""
        return self._stopped or self._process.exitcode is None

    def run(self, signature_name: str, arrays: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._running += 1
        try:
            channel = self._free.get()
            try:
                channel.send((signature_name, arrays))
                status, payload = channel.recv()
            except (EOFError, OSError) as e:
                self._process.join(0.5)
                raise unavailable(
                    f'model "{self.name}" version {self.version} is not available: its model '
                    f"process ended (exit code {self._process.exitcode}); it is loaded again "
                    "at the next scan"
                ) from e
            finally:
                self._free.put(channel)
        finally:
            with self._lock:
                self._running -= 1
                stop = self._closing and self._linger_over and self._running == 0
            if stop:
                self._stop()
        if status == "error":
            raise ModelError(payload)
        return payload

    def close(self) -> None:
        """Unload: the process exits once requests still running on it are
        done, and not before LINGER_SECONDS have passed."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        timer = threading.Timer(LINGER_SECONDS, self._linger_done)
        timer.daemon = True
        timer.start()

    def _linger_done(self) -> None:
        with self._lock:
            self._linger_over = True
            stop = self._running == 0
        if stop:
            self._stop()

    def stop_now(self) -> None:
        self._stop()

    def _stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        started = time.monotonic()
        try:
            self._control.send("stop")
        except (EOFError, OSError):
            pass
        self._process.join(STOP_SECONDS)
        _end(self._process)
        for conn in (self._control, *self._conns):
            conn.close()
        self._on_stopped(self)
        log.info(
            "model %s version %d: model process %s stopped in %.2fs",
            self.name, self.version, self.pid, time.monotonic() - started,
        )
