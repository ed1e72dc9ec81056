"""The trainer: models from MySQL rows, exported as SavedModels TensorFlow Serving loads.

    from mlbridge_server.trainer import train, evaluate
    result = train(dsn, "SELECT id, a, b, y FROM t", label="y", model="churn", model_base=base)

`train` and `evaluate` load TensorFlow on first use, so the pure parts (columns, split,
metrics) import without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Before any module here imports mysql.connector: mlbridge.db loads the connector's C extension
# first, without which it silently falls back to pure Python (2-3x slower fetches).
import mlbridge.db  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from .evaluation import evaluate
    from .training import TrainResult, train

__all__ = ["TrainResult", "evaluate", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainResult"):
        from . import training

        return getattr(training, name)
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
