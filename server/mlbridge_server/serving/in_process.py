"""Versions loaded in the server process itself: ``model_isolation = "none"``.

The default runs each version in a model process of its own (loader.py). This
loader is the other choice, with the same interface (start, load, stop,
log_setup): each version is a Servable in the front, called from the
request (or batch) threads, as TF Serving calls its models.

What it gains: no hop to a model process and back on each call (two wake-ups
and the arrays copied through a socket pair; 0.2-0.5 ms of a 1,024-row call
here, see BENCHMARKS.md), and no process per version.

What it costs, and why it is not the default:
- memory: TensorFlow does not always give back what an unloaded SavedModel
  used (20 load and unload cycles of a 62 MB model left the server 63 MB
  bigger here, against 0.6 MB with model processes, whose memory goes with
  them; a small model left neither bigger);
- isolation: a version that crashes (a bad custom op, the OOM killer) takes
  the whole server down, not only itself, and a load that hangs holds its
  load thread for good (a model process is ended after its load timeout);
- start-up: the front imports TensorFlow (seconds, and its memory) before it
  listens.
So it suits a fixed set of models that seldom change, where the last fraction
of a millisecond matters.
"""

from __future__ import annotations

import threading
from typing import Any

from .loader import facts_text


class InProcessModels:
    """Loads each version into this process. ``start()`` imports TensorFlow and
    sets its thread pools (before any op runs, as TensorFlow requires)."""

    def __init__(self, tensorflow_threads: tuple[int, int] = (0, 0)):
        # (intra-op, inter-op) threads of this process's TensorFlow; 0: TensorFlow's choice.
        self.tensorflow_threads = tensorflow_threads
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
        """Load and warm up a version here; raises the load's error."""
        self.start()
        from .model_process import facts, warm_up
        from .servable import Servable

        servable = Servable(name, version, path)
        warm_up(servable)
        return LocalServable(servable, facts(servable))

    def stop(self) -> None:
        """Nothing to stop: the versions go with the process."""


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
