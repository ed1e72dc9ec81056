"""Where a model process starts: a name the front can pickle as the target
of a process without importing TensorFlow itself (model_process.py does; the
loader process imported it already, so the import here is free)."""

from __future__ import annotations

from typing import Any


def serve(*args: Any) -> None:
    """model_process.serve(name, version, path, control, requests, tensorflow_threads, log_setup)."""
    from .model_process import serve as serve_model

    serve_model(*args)
