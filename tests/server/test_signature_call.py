"""servable.SignatureCall: the flat call of a signature answers as TensorFlow's own call does,
and is used only once it has been seen to; anything else keeps TensorFlow's call."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from mlbridge_server.serving.servable import Servable  # noqa: E402


@pytest.fixture(scope="module")
def servable(tmp_path_factory) -> Servable:
    """Three inputs whose places matter (out = a - 2b + 3c), declared in an order that is not
    their names' order, and a second output of another dtype."""

    class Mix(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="c"),
                                      tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.int64, name="b")])
        def serve(self, c, a, b):
            out = a - 2 * tf.cast(b, tf.float32) + 3 * c
            return {"out": out, "rows": tf.shape(out, out_type=tf.int64)}

    path = tmp_path_factory.mktemp("mix") / "1"
    module = Mix()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return Servable("mix", 1, str(path))


def rows(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.standard_normal(n).astype(np.float32), "b": rng.integers(-5, 5, n),
            "c": rng.standard_normal(n).astype(np.float32)}


def expected(inputs: dict[str, np.ndarray]) -> np.ndarray:
    return inputs["a"] - 2 * inputs["b"].astype(np.float32) + 3 * inputs["c"]


def test_the_flat_call_answers_as_tensorflows_call(servable):
    call = servable.signature_call("serving_default")
    assert not call.fast  # until verified, every call is TensorFlow's own
    assert call.verify(rows(2, 0)) and call.fast
    assert servable.flat_calls() == ["serving_default"]
    for n, seed in ((1, 1), (1024, 2), (0, 3)):
        inputs = rows(n, seed)
        got, public = call(inputs), call.public(inputs)
        assert set(got) == {"out", "rows"} and got["rows"].dtype == np.int64
        np.testing.assert_allclose(got["out"], expected(inputs), rtol=1e-6)
        np.testing.assert_array_equal(got["out"], public["out"])
        assert got["rows"].tolist() == [n]


def test_a_flat_order_that_answers_otherwise_is_refused(servable, monkeypatch):
    """The safety net: were the flat order ever wrong, verify sees other outputs and keeps
    TensorFlow's call."""
    call = type(servable.signature_call("serving_default"))(servable.signature_call("serving_default").function)
    monkeypatch.setattr(call, "flat_order", lambda: ["c", "b", "a"])  # the names reversed
    assert call.flat_order() == ["c", "b", "a"]
    assert not call.verify(rows(2, 0)) and not call.fast
    inputs = rows(5, 4)
    np.testing.assert_allclose(call(inputs)["out"], expected(inputs), rtol=1e-6)


def test_inputs_that_do_not_suit_keep_tensorflows_call(servable):
    call = type(servable.signature_call("serving_default"))(servable.signature_call("serving_default").function)
    assert not call.verify({"a": np.zeros(2, np.float32), "c": np.zeros(2, np.float32)})  # b missing
    assert not call.verify({**rows(2, 0), "b": np.array(["x", "y"], dtype=object)})  # TensorFlow refuses
    assert not call.fast
    inputs = rows(3, 5)
    np.testing.assert_allclose(call(inputs)["out"], expected(inputs), rtol=1e-6)
