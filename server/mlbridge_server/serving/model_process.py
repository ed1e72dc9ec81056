"""The model process: one SavedModel version, loaded and run apart from the front.

The front process (gRPC, checks, batching) never imports TensorFlow. Each
loaded version lives in a process of its own, forked from a loader process
(multiprocessing's forkserver) that imported TensorFlow and ydf_tf once, so a
fork starts in milliseconds and shares those pages with its siblings. When a
version is unloaded its process exits and the system gets all of its memory
back: TensorFlow keeps much of what a dropped SavedModel used, so unloading in
place would grow the server with every version it ever served.

This module is the loader process's preload: importing it imports TensorFlow.
``serve`` is what runs in a model process. Protocol, over multiprocessing
Connections the front created (pickled messages):

- control: the process sends ("ready", signature_defs_bytes, seconds) once the
  version is loaded and warmed up, or ("failed", message) and exits. It then
  waits for "stop" (or the end of the connection, when the front is gone) and
  exits without TensorFlow's teardown.
- each request connection: (signature_name, {input: ndarray}) in, ("ok",
  {output: ndarray}) or ("error", message) out, one at a time. A process has
  several, one thread each, so requests run concurrently.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from mlbridge_server.tf_runtime import import_quietly

import_quietly()

import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

# Types a warm-up row can be made of without knowing the model: zeros, False, "".
_WARM_KINDS = "biufO"


def _warm_up(servable: Any) -> None:
    """Run the default signature once on one row of zeros, so the first real
    request does not pay for tracing and allocation. A model that refuses
    zeros is not broken for it: its failure is logged, not raised."""
    from mlbridge.tensors import numpy_dtype

    signature = servable.signature_defs.signature_def.get("serving_default")
    if signature is None:
        return
    inputs = {}
    for key, info in signature.inputs.items():
        try:
            dtype = np.dtype(numpy_dtype(info.dtype))
        except Exception:  # noqa: BLE001 - a dtype we cannot build a row of
            return
        if dtype.kind not in _WARM_KINDS:
            return
        shape = info.tensor_shape
        dims = [1] if shape.unknown_rank else [1 if d.size < 0 else d.size for d in shape.dim]
        inputs[key] = np.full(dims, b"", dtype=object) if dtype.kind == "O" else np.zeros(dims, dtype)
    try:
        servable.run("serving_default", inputs)
    except Exception as e:  # noqa: BLE001
        log.debug("warm-up of %s version %s failed: %s", servable.name, servable.version, e)


def _name_process(title: str) -> None:
    """What ps and top show for this process (Linux keeps 15 bytes)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, title.encode("utf-8", "replace")[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:  # noqa: BLE001 - not Linux: the name is cosmetic
        pass


def _serve_requests(servable: Any, conn: Any) -> None:
    while True:
        try:
            signature_name, arrays = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", servable.run(signature_name, arrays))
        except Exception as e:  # noqa: BLE001 - the front turns it into the request's error
            reply = ("error", str(getattr(e, "message", None) or e) or type(e).__name__)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


def serve(name: str, version: int, path: str, control: Any, requests: list[Any]) -> None:
    """Load ``path`` and answer requests until the front says stop or goes away."""
    # The front decides when this process ends: a Ctrl-C or a SIGTERM sent to
    # the whole process group must not cut requests short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _name_process(f"mlb {name}:{version}")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    started = time.monotonic()
    try:
        from .servable import Servable

        servable = Servable(name, version, path)
        _warm_up(servable)
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
    control.send(
        ("ready", servable.signature_defs.SerializeToString(), time.monotonic() - started)
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
