"""One loaded SavedModel version: its signatures and how to run them."""

from __future__ import annotations

import os

# Before TensorFlow's first import: keep its C++ INFO and WARNING lines out of
# the server's log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Mapping  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Registers the inference ops of ydf's gradient-boosted trees (SimpleMLInferenceOpWithHandle):
# without it a tree model's SavedModel fails to load with "Op type not registered". Imported
# here, by the one module that loads SavedModels, so every loader has it.
import ydf_tf  # noqa: E402,F401

# INIT_OP_SIGNATURE: every TF2 SavedModel has this entry in its signature_def: it runs the
# initializers and is never a signature a client calls.
from mlbridge.serving_constants import INIT_OP_SIGNATURE  # noqa: E402,F401

from .signatures import read_signature_defs  # noqa: E402


class Servable:
    """A SavedModel version loaded with tf.saved_model.load."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        # Keep the loaded object alive: the concrete functions in .signatures
        # do not own the variables they read.
        self._model = tf.saved_model.load(path)
        self._functions = dict(self._model.signatures)

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, {self.version})"

    def has_signature(self, signature_name: str) -> bool:
        return signature_name in self._functions and signature_name in self.signature_defs.signature_def

    def signature_names(self) -> list[str]:
        return sorted(k for k in self._functions if k != INIT_OP_SIGNATURE)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on numpy inputs whose names and dtypes were checked
        against it; TensorFlow errors propagate (tf.errors.OpError, TypeError
        or ValueError for arguments the function rejects)."""
        function = self._functions[signature_name]
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        outputs = function(**tensors)
        return {key: value.numpy() for key, value in outputs.items()}


def load(name: str, version: int, path: str) -> Servable:
    return Servable(name, version, path)
