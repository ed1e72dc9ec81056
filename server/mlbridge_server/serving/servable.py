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
from google.protobuf import text_format  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

# INIT_OP_SIGNATURE: every TF2 SavedModel has this entry in its signature_def: it runs the
# initializers and is never a signature a client calls.
from mlbridge.serving_constants import INIT_OP_SIGNATURE  # noqa: E402
from mlbridge.wire import get_model_metadata_pb2  # noqa: E402

from .modelbase import saved_model_file  # noqa: E402

SERVE_TAG = "serve"


def read_signature_defs(path: str) -> get_model_metadata_pb2.SignatureDefMap:
    """The signatures of the SavedModel in ``path``, read from saved_model.pb
    without loading it: the SignatureDefMap TF Serving returns, field for field.

    The file is parsed with TensorFlow's own SavedModel message; its
    SignatureDef entries are carried over to ours as bytes, which works
    because the two are wire-compatible."""
    filename = saved_model_file(path)
    if filename is None:
        raise FileNotFoundError(f"no saved_model.pb in {path}")
    saved_model = saved_model_pb2.SavedModel()
    with open(filename, "rb") as f:
        data = f.read()
    if filename.endswith(".pbtxt"):
        text_format.Parse(data.decode("utf-8"), saved_model)
    else:
        saved_model.ParseFromString(data)
    if not saved_model.meta_graphs:
        raise ValueError(f"{filename} holds no MetaGraphDef")
    meta_graph = next(
        (mg for mg in saved_model.meta_graphs if SERVE_TAG in mg.meta_info_def.tags),
        saved_model.meta_graphs[0],
    )
    out = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in meta_graph.signature_def.items():
        out.signature_def[key].ParseFromString(signature.SerializeToString())
    return out


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
