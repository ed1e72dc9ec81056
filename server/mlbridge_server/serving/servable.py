"""One loaded SavedModel version: its signatures and how to run them."""

from __future__ import annotations

import os

# Before TensorFlow's first import: keep its C++ INFO and WARNING lines out of
# the server's log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

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
        self._functions = {key: SignatureCall(fn) for key, fn in self._model.signatures.items()}

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, {self.version})"

    def has_signature(self, signature_name: str) -> bool:
        return signature_name in self._functions and signature_name in self.signature_defs.signature_def

    def signature_names(self) -> list[str]:
        return sorted(k for k in self._functions if k != INIT_OP_SIGNATURE)

    def signature_call(self, signature_name: str) -> SignatureCall:
        return self._functions[signature_name]

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on numpy inputs whose names and dtypes were checked
        against it; TensorFlow errors propagate (tf.errors.OpError, TypeError
        or ValueError for arguments the function rejects)."""
        return self._functions[signature_name](inputs)

    def flat_calls(self) -> list[str]:
        """The signatures that take the flat call."""
        return sorted(key for key, call in self._functions.items() if call.fast)

    def verify_fast_calls(self, inputs_for: Any) -> dict[str, bool]:
        """Switch each signature to its flat call where it gives the same
        outputs as TensorFlow's own call on the inputs ``inputs_for(name)``
        makes (None: no inputs to try it on, the signature keeps TensorFlow's
        call). Returns, per signature, whether it now uses the flat call."""
        used = {}
        for key, call in self._functions.items():
            inputs = None if key == INIT_OP_SIGNATURE else inputs_for(key)
            used[key] = inputs is not None and call.verify(inputs)
        return used


class SignatureCall:
    """One signature function and the way to call it.

    TensorFlow's own call, ``function(**tensors)``, binds the keyword
    arguments to the function's declared inputs in Python on every call:
    about 0.2 ms for 8 inputs, a third of a whole 1,024-row call of a small
    model. The flat call hands the tensors over in the function's input order,
    found once, and skips that binding; it is the call TensorFlow's own makes
    after binding (ConcreteFunction._call_flat). The handlers check names,
    dtypes and shapes against the signature before any call, which is what
    the binding would otherwise have refused.

    The flat call is used only once ``verify`` has seen it give the same
    outputs as TensorFlow's call, on inputs whose values differ from one input
    to the next (so an input order gone wrong would show). Until then, or if
    this TensorFlow has no such entry, every call is TensorFlow's own.
    """

    def __init__(self, function: Any):
        self.function = function
        self._order: list[str] | None = None
        self._captured: list[Any] = []

    @property
    def fast(self) -> bool:
        return self._order is not None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        order = self._order
        if order is None or len(inputs) != len(order):
            return self.public(inputs)
        return self._flat(inputs, order, self._captured)

    def _flat(
        self, inputs: Mapping[str, np.ndarray], order: list[str], captured: list[Any]
    ) -> dict[str, np.ndarray]:
        tensors = [tf.constant(inputs[key]) for key in order]
        outputs = self.function._call_flat(tensors, captured)  # noqa: SLF001
        return {key: value.numpy() for key, value in outputs.items()}

    def public(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """TensorFlow's own call: ``function(**tensors)``."""
        outputs = self.function(**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    def flat_order(self) -> list[str] | None:
        """The input names in the order of the function's flat inputs, or None
        when the signature is not one dict of named tensors."""
        try:
            args, kwargs = self.function.structured_input_signature
            specs = tf.nest.flatten(kwargs)
            captured = list(self.function.captured_inputs)
            flat_inputs = self.function.inputs
        except (AttributeError, TypeError, ValueError):
            return None
        if args or not isinstance(kwargs, dict) or len(specs) != len(kwargs):
            return None
        order = sorted(kwargs)  # tf.nest flattens a dict in key order
        if [getattr(spec, "name", None) for spec in specs] != order:
            return None
        if len(flat_inputs) != len(order) + len(captured):
            return None
        return order

    def verify(self, inputs: Mapping[str, np.ndarray]) -> bool:
        """Use the flat call from now on if it answers ``inputs`` as
        TensorFlow's call does; returns whether it does."""
        order = self.flat_order()
        if order is None or sorted(inputs) != order or not hasattr(self.function, "_call_flat"):
            return False
        try:
            expected = self.public(inputs)
            captured = list(self.function.captured_inputs)
            got = self._flat(inputs, order, captured)
        except Exception:  # noqa: BLE001 - the inputs or the flat entry do not suit: keep TensorFlow's call
            return False
        if set(got) != set(expected) or not all(_same(got[k], expected[k]) for k in expected):
            return False
        self._captured = captured
        self._order = order
        return True


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and (
        np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    )


def load(name: str, version: int, path: str) -> Servable:
    return Servable(name, version, path)
