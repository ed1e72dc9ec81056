"""The model process: one SavedModel version, loaded and run apart from the front.

With model_isolation "process", each loaded version lives in a process of its
own, forked from a loader process (multiprocessing's forkserver) that imported
TensorFlow and ydf_tf once, so a fork starts in milliseconds and shares those
pages with its siblings, and the front process (gRPC, checks, batching) never
imports TensorFlow. When a version is unloaded its process exits and the system
gets all of its memory back. Under the default, model_isolation "none"
(in_process.py), no model process runs: this module's warm_up, facts and
set_threads serve versions loaded in the front.

This module is the loader process's preload: importing it imports TensorFlow.
``serve`` is what runs in a model process. Protocol, over multiprocessing
Connections the front created (pickled messages):

- control: the process sends ("ready", signature_defs_bytes, seconds, facts)
  once the version is loaded and warmed up (facts: a dict of how it runs, for
  the log: its TensorFlow thread settings and which signatures take the flat
  call), or ("failed", message) and exits. It then
  waits for "stop" (or the end of the connection, when the front is gone) and
  exits without TensorFlow's teardown.
- each request connection: (signature_name, {input: ndarray}) in, ("ok",
  {output: ndarray}) or ("error", message) out, one at a time, framed by
  model_channel.Channel (one write a message, the arrays out of band). A
  process has several, one thread each, so requests run concurrently.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from mlbridge_server.serving import tensorflow_env
from mlbridge_server.tf_runtime import import_quietly

import_quietly()

import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

# Types a sample row can be made of without knowing the model: numbers, bools, strings.
_SAMPLE_KINDS = "biufO"


def _sample_inputs(signature: Any, rows: int, distinct: bool) -> dict[str, np.ndarray] | None:
    """Inputs for ``signature`` with ``rows`` rows where a leading dimension
    is free: zeros, False and "" or, when ``distinct``, values that differ
    from one input and one row to the next. None when an input's type is
    one no value can be made of."""
    from mlbridge.tensors import numpy_dtype

    inputs = {}
    for i, key in enumerate(sorted(signature.inputs)):
        info = signature.inputs[key]
        try:
            dtype = np.dtype(numpy_dtype(info.dtype))
        except Exception:  # noqa: BLE001 - a dtype we cannot build a row of
            return None
        if dtype.kind not in _SAMPLE_KINDS:
            return None
        shape = info.tensor_shape
        if shape.unknown_rank:
            dims = [rows]
        else:
            dims = [d.size if d.size >= 0 else (rows if j == 0 else 1) for j, d in enumerate(shape.dim)]
        count = int(np.prod(dims, dtype=np.int64))
        if not distinct:
            values = np.full(count, b"", dtype=object) if dtype.kind == "O" else np.zeros(count, dtype)
        elif dtype.kind == "O":
            values = np.array([f"{key} {n}".encode() for n in range(count)], dtype=object)
        elif dtype.kind == "b":
            values = (np.arange(count) + i) % 2 == 0
        else:
            values = (np.arange(count) % 7 + 2 * i + 1).astype(dtype)
        inputs[key] = values.reshape(dims)
    return inputs


def warm_up(servable: Any) -> None:
    """Run the default signature once on one row of zeros, so the first real
    request does not pay for tracing and allocation; then let each signature
    take its flat call where it answers sample rows as TensorFlow's own call
    does (servable.SignatureCall). A model that refuses zeros is not broken
    for it: its failure is logged, not raised."""
    signatures = servable.signature_defs.signature_def
    signature = signatures.get("serving_default")
    inputs = None if signature is None else _sample_inputs(signature, 1, distinct=False)
    if inputs is not None:
        try:
            servable.run("serving_default", inputs)
        except Exception as e:  # noqa: BLE001
            log.debug("warm-up of %s version %s failed: %s", servable.name, servable.version, e)

    def sample(name: str) -> dict[str, np.ndarray] | None:
        return _sample_inputs(signatures[name], 2, distinct=True) if name in signatures else None

    servable.verify_fast_calls(sample)


def _name_process(title: str) -> None:
    """What ps and top show for this process (Linux keeps 15 bytes)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, title.encode("utf-8", "replace")[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:  # noqa: BLE001 - not Linux: the name is cosmetic
        pass


def _serve_requests(servable: Any, conn: Any) -> None:
    from .model_channel import Channel

    channel = Channel(conn.fileno())
    while True:
        try:
            signature_name, arrays = channel.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", servable.run(signature_name, arrays))
        except Exception as e:  # noqa: BLE001 - the front turns it into the request's error
            reply = ("error", str(getattr(e, "message", None) or e) or type(e).__name__)
        try:
            channel.send(reply)
        except (EOFError, OSError):
            return


def set_threads(intra_op: int, inter_op: int) -> None:
    """TensorFlow's thread pools for this process (0: TensorFlow's choice). Set
    before anything runs: the loader process imported TensorFlow but never
    ran an op, so each forked process still chooses its own."""
    import tensorflow as tf

    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def facts(servable: Any) -> dict[str, Any]:
    """How this process runs its version, for the front's log line."""
    import tensorflow as tf

    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "flat_calls": servable.flat_calls(),
        "onednn": tensorflow_env.onednn(),
    }


class _VersionFilter(logging.Filter):
    """Names the model and version on every record of this process (JSON lines carry them)."""

    def __init__(self, name: str, version: int):
        super().__init__()
        self.model, self.version = name, version

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "model"):
            record.model = self.model
        if not hasattr(record, "version"):
            record.version = self.version
        return True


def _configure_logging(log_setup: tuple[str, str] | None, name: str, version: int) -> None:
    """Log as the front does (text or JSON lines on stderr, its level), each record naming this
    process's model and version."""
    if log_setup is None:
        return
    from mlbridge import log_format

    fmt, level = log_setup
    handler = log_format.configure(fmt, level)
    handler.addFilter(_VersionFilter(name, version))
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for chatty in ("absl", "tensorflow"):
            logging.getLogger(chatty).setLevel(logging.ERROR)


def serve(
    name: str,
    version: int,
    path: str,
    control: Any,
    requests: list[Any],
    tensorflow_threads: tuple[int, int] = (0, 0),
    log_setup: tuple[str, str] | None = None,
) -> None:
    """Load ``path`` and answer requests until the front says stop or goes away.
    ``tensorflow_threads``: (intra-op, inter-op) threads, 0 for TensorFlow's choice;
    ``log_setup``: (format, level) of the front's log."""
    # The front decides when this process ends: a Ctrl-C or a SIGTERM sent to
    # the whole process group must not cut requests short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _name_process(f"mlb {name}:{version}")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    started = time.monotonic()
    _configure_logging(log_setup, name, version)
    try:
        set_threads(*tensorflow_threads)
        from .servable import Servable

        servable = Servable(name, version, path)
        warm_up(servable)
    except BaseException as e:  # noqa: BLE001 - any failure to load is reported, not raised
        text = str(e).strip() or type(e).__name__
        try:
            control.send(("failed", text))
        finally:
            os._exit(1)
    for conn in requests:
        threading.Thread(
            target=_serve_requests, args=(servable, conn), name="model-request", daemon=True
        ).start()
    log.debug("loaded and warmed up in %.2fs, pid %d", time.monotonic() - started, os.getpid())
    control.send(
        ("ready", servable.signature_defs.SerializeToString(), time.monotonic() - started,
         facts(servable))
    )
    while True:
        try:
            message = control.recv()
        except (EOFError, OSError):
            break
        if message == "stop":
            break
    # Skip TensorFlow's teardown: the memory goes back to the system with the process.
    os._exit(0)
