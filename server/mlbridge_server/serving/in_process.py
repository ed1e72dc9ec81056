"""Versions loaded in the server process itself: ``model_isolation = "none"``, the default.

Each version is a Servable in the front, called from the request (or batch)
threads, as TF Serving calls its models. The other choice runs each version in a
model process of its own (loader.py); this loader has the same interface
(start, load, stop, log_setup).

Why it is the default: no hop to a model process and back on each call (two
wake-ups and the arrays copied through a socket pair: 0.2-0.5 ms of a 1,024-row
call here, see BENCHMARKS.md), and no process per version. An unloaded version's
memory goes back to the system as it does with model processes, now that the
server runs TensorFlow without oneDNN's pooling allocator (tensorflow_env.py).

What it costs, against model processes:
- isolation: a version that crashes (a bad custom op, the OOM killer) takes the
  whole server down, not only itself;
- a load that hangs (a model base on a stuck network file system) cannot be
  ended: after the load timeout it is reported FAILED and its thread is left
  behind, blocked, for good (a model process is ended). Worse, TensorFlow reads
  part of a checkpoint holding Python's global lock, so a read that blocks
  there would stall every thread of the server. So every file of a version is
  read here first (``_read_ahead``, the lock released), and a file that is not
  a regular file (a FIFO, a device) is refused: TensorFlow then reads from the
  page cache, and what blocks, blocks in a thread of its own;
- start-up: the front imports TensorFlow (seconds, and its memory) before it
  listens.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import Any

from .loader import LOAD_TIMEOUT_SECONDS, facts_text

log = logging.getLogger(__name__)


class InProcessModels:
    """Loads each version into this process. ``start()`` imports TensorFlow and
    sets its thread pools (before any op runs, as TensorFlow requires)."""

    def __init__(
        self,
        tensorflow_threads: tuple[int, int] = (0, 0),
        load_timeout: float = LOAD_TIMEOUT_SECONDS,
    ):
        # (intra-op, inter-op) threads of this process's TensorFlow; 0: TensorFlow's choice.
        self.tensorflow_threads = tensorflow_threads
        self.load_timeout = load_timeout
        # Kept for the interface of loader.ModelProcesses: the versions log through this
        # process's own logging, already set up.
        self.log_setup: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            from . import model_process  # imports TensorFlow and ydf_tf

            model_process.set_threads(*self.tensorflow_threads)
            self._started = True

    def load(self, name: str, version: int, path: str) -> LocalServable:
        """Load and warm up a version here; raises the load's error, or TimeoutError after
        ``load_timeout`` seconds. The load runs in a thread of its own, so that one that hangs
        can be given up on: its thread stays blocked, and what it loads later is dropped."""
        self.start()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                outcome["servable"] = _load(name, version, path)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = e
            finally:
                done.set()

        threading.Thread(target=work, name=f"load {name}:{version}", daemon=True).start()
        if not done.wait(self.load_timeout):
            log.warning(
                "model %s version %s: giving up on its load after %g s; its thread stays blocked "
                "(with --model-isolation process a hung load's process is ended)",
                name, version, self.load_timeout,
            )
            raise TimeoutError(f"loading took more than {self.load_timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["servable"]

    def stop(self) -> None:
        """Nothing to stop: the versions go with the process."""


# The chunk _read_ahead reads a file in.
_CHUNK = 1 << 20


def _read_ahead(path: str) -> None:
    """Read every file under ``path`` once, with Python's lock released: raises OSError for a
    file that is not a regular file, or that cannot be read."""
    buffer = bytearray(_CHUNK)
    # Into linked folders too, as TensorFlow goes (a loop ends where paths grow too long to list).
    for folder, _, files in os.walk(path, followlinks=True):
        for name in sorted(files):
            file = os.path.join(folder, name)
            if not stat.S_ISREG(os.stat(file).st_mode):
                raise OSError(
                    f"{file} is not a regular file (a FIFO or a device?): a SavedModel's files "
                    "must be regular files"
                )
            with open(file, "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass


def _load(name: str, version: int, path: str) -> LocalServable:
    from .model_process import facts, warm_up
    from .servable import Servable

    _read_ahead(path)
    servable = Servable(name, version, path)
    warm_up(servable)
    return LocalServable(servable, facts(servable))


class LocalServable:
    """A version loaded in the server process: the Servable's interface (name,
    version, path, signature_defs, run), and the load's log line."""

    def __init__(self, servable: Any, facts: dict[str, Any]):
        self._servable = servable
        self.name = servable.name
        self.version = servable.version
        self.path = servable.path
        self.signature_defs = servable.signature_defs
        self.run = servable.run
        self.facts = facts

    def __repr__(self) -> str:
        return f"LocalServable({self.name!r}, {self.version})"

    def describe(self) -> str:
        """Where the version runs, for the line that says it loaded."""
        return "in the server process" + facts_text(self.facts)
