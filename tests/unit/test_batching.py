"""Dynamic batching's rules (serving/batching.py) on fake servables: which
requests share a call, how outputs are cut back, and that one request's
error stays its own. The real server and real SavedModels are in
tests/server/test_batching_server.py."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import grpc
import numpy as np
import pytest

from mlbridge.errors import MlbridgeError
from mlbridge.wire import get_model_metadata_pb2, types_pb2
from mlbridge_server.serving.batching import (
    Batcher,
    BatchingSettings,
    NoBatchRecorder,
    batch_recorder,
    signature_unbatchable,
)
from mlbridge_server.serving.errors import RequestError

WAIT = 30.0  # seconds a test waits for something that should happen at once


def signature_defs(inputs: dict, outputs: dict, name: str = "serving_default"):
    """A SignatureDefMap; shapes are lists (-1: variable) or None (unknown rank)."""
    out = get_model_metadata_pb2.SignatureDefMap()
    signature = out.signature_def[name]
    for target, specs in ((signature.inputs, inputs), (signature.outputs, outputs)):
        for key, shape in specs.items():
            info = target[key]
            info.name = key
            info.dtype = types_pb2.DT_FLOAT
            if shape is None:
                info.tensor_shape.unknown_rank = True
            else:
                for size in shape:
                    info.tensor_shape.dim.add(size=size)
    return out


def double(arrays):
    return {"y": arrays["x"] * 2}


class FakeServable:
    """Runs ``fn`` on the inputs; records each call's rows and thread. With
    ``gate`` set, the first call waits for it: that holds a batch running
    while a test queues the next requests."""

    def __init__(self, fn=double, inputs=None, outputs=None, gate: threading.Event | None = None):
        self.name = "fake"
        self.version = 3
        self.signature_defs = signature_defs(inputs or {"x": [-1]}, outputs or {"y": [-1]})
        self.fn = fn
        self.gate = gate
        self.started = threading.Event()
        self.calls: list[int] = []
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def run(self, signature_name, arrays):
        assert signature_name == "serving_default"
        with self._lock:
            first = not self.calls
            self.calls.append(len(next(iter(arrays.values()))))
            self.threads.append(threading.get_ident())
        self.started.set()
        if first and self.gate is not None:
            assert self.gate.wait(WAIT)
        return self.fn(arrays)


class Caller(threading.Thread):
    """One client: calls batcher.run in a thread of its own."""

    def __init__(self, batcher, servable, arrays):
        super().__init__(daemon=True)
        self.batcher, self.servable, self.arrays = batcher, servable, arrays
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.batcher.run(self.servable, "serving_default", self.arrays)
        except Exception as e:
            self.error = e

    def outcome(self):
        self.join(WAIT)
        assert not self.is_alive(), "the call did not return"
        if self.error is not None:
            raise self.error
        return self.result


def waiting_requests(batcher: Batcher) -> int:
    """Requests queued behind a running batch, over every queue."""
    total = 0
    for owner in list(batcher._servables.values()):
        with owner.cond:
            for queue in owner.queues.values():
                total += sum(len(batch.tasks) for batch in queue.waiting)
    return total


def until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.002)


def start_blocked(batcher, servable):
    """A first call that holds its queue running until servable.gate is set."""
    first = Caller(batcher, servable, {"x": np.array([1000.0], np.float32)})
    first.start()
    assert servable.started.wait(WAIT)
    return first


def queue_behind(batcher, servable, inputs):
    callers = []
    for i, arrays in enumerate(inputs):
        caller = Caller(batcher, servable, arrays)
        caller.start()
        callers.append(caller)
        until(lambda n=i + 1: waiting_requests(batcher) == n, f"request {i + 1} queued")
    return callers


def settings(**changes):
    base = dict(batch_timeout_micros=60_000_000, num_batch_threads=1)
    base.update(changes)
    return BatchingSettings(**base)


def test_a_lone_request_runs_at_once_in_its_own_thread():
    # A timeout of a minute: the call can only return at once if it is not held for it.
    batcher = Batcher(BatchingSettings(batch_timeout_micros=60_000_000))
    servable = FakeServable()
    out = batcher.run(servable, "serving_default", {"x": np.array([1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(out["y"], [2.0, 4.0])
    assert servable.threads == [threading.get_ident()]
    assert servable.calls == [2]


def test_requests_queued_behind_a_running_batch_run_as_one_call_each_with_its_own_rows():
    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    inputs = [{"x": np.arange(n, dtype=np.float32) + 10 * n} for n in (1, 3, 2, 1, 4)]
    callers = queue_behind(batcher, servable, inputs)
    gate.set()
    np.testing.assert_array_equal(first.outcome()["y"], [2000.0])
    for caller, arrays in zip(callers, inputs):
        np.testing.assert_array_equal(caller.outcome()["y"], arrays["x"] * 2)
    assert servable.calls == [1, 11]  # the first alone, then the 5 requests' 11 rows at once
    assert batcher.open_queues() == 0  # idle queues are not kept


def test_several_inputs_and_outputs_with_trailing_dimensions_are_cut_by_rows():
    def fn(arrays):
        return {"sum": arrays["a"].sum(axis=1) + arrays["b"], "echo": arrays["a"]}

    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(
        fn, inputs={"a": [-1, 3], "b": None}, outputs={"sum": [-1], "echo": None}, gate=gate
    )
    first = Caller(batcher, servable, {"a": np.ones((1, 3), np.float32), "b": np.zeros(1, np.float32)})
    first.start()
    assert servable.started.wait(WAIT)
    inputs = [
        {"a": np.full((n, 3), n, np.float32), "b": np.arange(n, dtype=np.float32)} for n in (2, 1, 3)
    ]
    callers = queue_behind(batcher, servable, inputs)
    gate.set()
    first.outcome()
    for caller, arrays in zip(callers, inputs):
        out = caller.outcome()
        np.testing.assert_array_equal(out["echo"], arrays["a"])
        np.testing.assert_array_equal(out["sum"], arrays["a"].sum(axis=1) + arrays["b"])
    assert servable.calls == [1, 6]


def test_inputs_of_another_trailing_shape_go_to_a_queue_of_their_own():
    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(inputs={"x": None}, outputs={"y": None}, gate=gate)
    first = Caller(batcher, servable, {"x": np.ones((1, 2), np.float32)})
    first.start()
    assert servable.started.wait(WAIT)
    wide = [{"x": np.ones((1, 2), np.float32)}, {"x": np.ones((2, 2), np.float32)}]
    callers = queue_behind(batcher, servable, wide)
    # A [n, 5] request finds no batch of its own queue running: it runs at once.
    other = Caller(batcher, servable, {"x": np.ones((1, 5), np.float32)})
    other.start()
    np.testing.assert_array_equal(other.outcome()["y"], np.full((1, 5), 2.0))
    gate.set()
    first.outcome()
    for caller, arrays in zip(callers, wide):
        np.testing.assert_array_equal(caller.outcome()["y"], arrays["x"] * 2)
    assert sorted(servable.calls) == [1, 1, 3]


def test_a_bad_value_fails_only_its_own_request():
    def fn(arrays):
        if (arrays["x"] < 0).any():
            raise ValueError("x must not be negative")
        return {"y": arrays["x"] * 2}

    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(fn, gate=gate)
    first = start_blocked(batcher, servable)
    inputs = [{"x": np.array([1.0, 2.0], np.float32)}, {"x": np.array([-1.0], np.float32)},
              {"x": np.array([3.0], np.float32)}]
    callers = queue_behind(batcher, servable, inputs)
    gate.set()
    first.outcome()
    np.testing.assert_array_equal(callers[0].outcome()["y"], [2.0, 4.0])
    with pytest.raises(ValueError, match="must not be negative"):
        callers[1].outcome()
    np.testing.assert_array_equal(callers[2].outcome()["y"], [6.0])
    # the batch of 4 rows failed, then each request ran alone
    assert servable.calls == [1, 4, 2, 1, 1]


def test_a_batch_waits_for_its_timeout_when_a_thread_is_free():
    gate = threading.Event()
    batcher = Batcher(BatchingSettings(batch_timeout_micros=20_000, num_batch_threads=2))
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    # Behind a running batch, with a second thread free: this one runs once
    # its 20 ms are up, while the first is still held.
    second = Caller(batcher, servable, {"x": np.array([5.0], np.float32)})
    second.start()
    np.testing.assert_array_equal(second.outcome()["y"], [10.0])
    assert first.is_alive()
    gate.set()
    first.outcome()


def test_without_a_free_thread_a_batch_waits_for_the_running_one_not_for_its_timeout():
    gate = threading.Event()
    batcher = Batcher(settings(batch_timeout_micros=60_000_000))
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    (second,) = queue_behind(batcher, servable, [{"x": np.array([5.0], np.float32)}])
    second.join(0.2)
    assert second.is_alive(), "ran before the running batch ended and before its timeout"
    gate.set()  # the queue is idle again: the waiting batch goes at once
    np.testing.assert_array_equal(second.outcome()["y"], [10.0])
    first.outcome()


def test_a_batch_holds_at_most_max_batch_size_rows_and_a_bigger_request_runs_whole():
    gate = threading.Event()
    batcher = Batcher(settings(max_batch_size=4))
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    sizes = (3, 2, 1, 10, 1)
    inputs = [{"x": np.arange(n, dtype=np.float32)} for n in sizes]
    callers = queue_behind(batcher, servable, inputs)
    gate.set()
    first.outcome()
    for caller, arrays in zip(callers, inputs):
        np.testing.assert_array_equal(caller.outcome()["y"], arrays["x"] * 2)
    # 3 alone (2 did not fit), then 2+1, then the 10 rows unsplit, then 1
    assert servable.calls == [1, 3, 3, 10, 1]


def test_a_signature_without_a_variable_leading_dimension_is_not_batched():
    assert signature_unbatchable(signature_defs({"x": [-1]}, {"y": [-1]}).signature_def[
        "serving_default"]) is None
    assert "fixed leading dimension (4)" in signature_unbatchable(
        signature_defs({"x": [4]}, {"y": [-1]}).signature_def["serving_default"])
    assert 'input "x" is a scalar' in signature_unbatchable(
        signature_defs({"x": []}, {"y": [-1]}).signature_def["serving_default"])
    assert 'output "m" is a scalar' in signature_unbatchable(
        signature_defs({"x": [-1]}, {"m": []}).signature_def["serving_default"])
    assert "no inputs" in signature_unbatchable(signature_defs({}, {"y": [-1]}).signature_def[
        "serving_default"])

    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(inputs={"x": [2]}, gate=gate)
    first = Caller(batcher, servable, {"x": np.ones(2, np.float32)})
    first.start()
    assert servable.started.wait(WAIT)
    # Not queued behind the held call: it runs at once, alone.
    out = batcher.run(servable, "serving_default", {"x": np.array([1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(out["y"], [2.0, 4.0])
    gate.set()
    first.outcome()
    assert servable.calls == [2, 2]


def test_outputs_without_one_row_per_input_row_run_each_request_alone_from_then_on():
    def total(arrays):  # one value for the whole call: rows are not independent
        return {"y": np.array([arrays["x"].sum()], np.float32)}

    gate = threading.Event()
    batcher = Batcher(settings())
    servable = FakeServable(total, gate=gate)  # the signature says y is [-1]
    first = start_blocked(batcher, servable)
    inputs = [{"x": np.array([1.0, 2.0], np.float32)}, {"x": np.array([5.0], np.float32)}]
    callers = queue_behind(batcher, servable, inputs)
    gate.set()
    first.outcome()
    np.testing.assert_array_equal(callers[0].outcome()["y"], [3.0])
    np.testing.assert_array_equal(callers[1].outcome()["y"], [5.0])
    assert servable.calls == [1, 3, 2, 1]
    assert "not one row per input row" in batcher._servables[servable].unbatchable["serving_default"]

    # From then on it is not batched: a held call does not queue the next one.
    servable.gate, servable.calls = threading.Event(), []
    held = start_blocked(batcher, servable)
    out = batcher.run(servable, "serving_default", {"x": np.array([4.0, 4.0], np.float32)})
    np.testing.assert_array_equal(out["y"], [8.0])
    servable.gate.set()
    held.outcome()


def test_a_full_queue_answers_resource_exhausted():
    gate = threading.Event()
    batcher = Batcher(settings(max_batch_size=1, max_enqueued_batches=2))
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    inputs = [{"x": np.array([float(i)], np.float32)} for i in range(2)]
    callers = queue_behind(batcher, servable, inputs)
    with pytest.raises(RequestError) as refused:
        batcher.run(servable, "serving_default", {"x": np.array([9.0], np.float32)})
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue" in refused.value.message and "full" in refused.value.message
    assert "MLBRIDGE_SERVING_MAX_ENQUEUED_BATCHES" in refused.value.message
    gate.set()
    first.outcome()
    for caller, arrays in zip(callers, inputs):
        np.testing.assert_array_equal(caller.outcome()["y"], arrays["x"] * 2)
    assert servable.calls == [1, 1, 1]  # the refused request never ran


def test_queues_go_with_their_servable():
    batcher = Batcher(settings())
    gate = threading.Event()
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    (second,) = queue_behind(batcher, servable, [{"x": np.array([1.0], np.float32)}])
    gate.set()
    first.outcome()
    second.outcome()
    assert servable.calls == [1, 1]
    assert batcher.servables_with_queues() == 1
    gone = weakref.ref(servable)
    del servable, first, second
    gc.collect()
    assert gone() is None, "the batcher keeps the servable alive"
    assert batcher.servables_with_queues() == 0


def test_batching_off_runs_every_call_as_it_comes():
    gate = threading.Event()
    batcher = Batcher(BatchingSettings(enable_batching=False))
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    out = batcher.run(servable, "serving_default", {"x": np.array([1.0], np.float32)})
    np.testing.assert_array_equal(out["y"], [2.0])
    gate.set()
    first.outcome()
    assert servable.calls == [1, 1]


def test_batch_sizes_and_queue_delays_are_recorded():
    class Recorder:
        def __init__(self):
            self.batches, self.delays = [], []

        def observe_batch(self, model, version, rows):
            self.batches.append((model, version, rows))

        def observe_queue_delay(self, model, version, seconds):
            self.delays.append((model, version, seconds))

    recorder = Recorder()
    gate = threading.Event()
    batcher = Batcher(settings(), recorder)
    servable = FakeServable(gate=gate)
    first = start_blocked(batcher, servable)
    callers = queue_behind(batcher, servable, [{"x": np.ones(2, np.float32)}, {"x": np.ones(3, np.float32)}])
    gate.set()
    first.outcome()
    for caller in callers:
        caller.outcome()
    assert recorder.batches == [("fake", 3, 1), ("fake", 3, 5)]
    assert len(recorder.delays) == 3 and all(d[:2] == ("fake", 3) and d[2] >= 0 for d in recorder.delays)
    # the two queued requests waited for the first call to end
    assert min(d[2] for d in recorder.delays[1:]) > 0
    assert isinstance(batch_recorder(object()), NoBatchRecorder)
    assert batch_recorder(recorder) is recorder


def test_many_concurrent_callers_each_get_their_own_answer():
    batcher = Batcher(BatchingSettings(max_batch_size=8, batch_timeout_micros=500))
    servable = FakeServable(lambda a: {"y": a["x"] * 2 + 1})
    callers = [
        Caller(batcher, servable, {"x": np.arange(i % 5 + 1, dtype=np.float32) + i}) for i in range(64)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        np.testing.assert_array_equal(caller.outcome()["y"], caller.arrays["x"] * 2 + 1)
    assert sum(servable.calls) == sum(i % 5 + 1 for i in range(64))
    assert max(servable.calls) <= 8


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch_size must be a whole number >= 1, got 0"):
        BatchingSettings(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_timeout_micros must be a whole number >= 0"):
        BatchingSettings(batch_timeout_micros=-1)
    with pytest.raises(ValueError, match="enable_batching must be true or false"):
        BatchingSettings(enable_batching="yes")
    from mlbridge.serving_settings import ServerSettings

    def from_env(environ):
        return BatchingSettings.from_settings(ServerSettings.resolve(environ=environ))

    assert from_env({}) == BatchingSettings()
    got = from_env({
        "MLBRIDGE_SERVING_ENABLE_BATCHING": "off",
        "MLBRIDGE_SERVING_MAX_BATCH_SIZE": "2048",
        "MLBRIDGE_SERVING_BATCH_TIMEOUT_MICROS": "0",
        "MLBRIDGE_SERVING_NUM_BATCH_THREADS": "4",
        "MLBRIDGE_SERVING_MAX_ENQUEUED_BATCHES": "8",
    })
    assert got == BatchingSettings(False, 2048, 0, 4, 8)
    for bad in ({"MLBRIDGE_SERVING_NUM_BATCH_THREADS": "two"}, {"MLBRIDGE_SERVING_MAX_BATCH_SIZE": "0"},
                {"MLBRIDGE_SERVING_ENABLE_BATCHING": "maybe"}):
        with pytest.raises(MlbridgeError, match=next(iter(bad))):
            from_env(bad)


def test_handlers_run_keeps_its_error_codes_through_the_batcher():
    from mlbridge_server.serving.handlers import Handlers
    from mlbridge_server.serving.limits import RequestLimits

    def fn(arrays):
        if (arrays["x"] < 0).any():
            raise ValueError("x must not be negative")
        return {"y": arrays["x"] * 2}

    gate = threading.Event()
    handlers = Handlers(None, RequestLimits(), settings(max_batch_size=1, max_enqueued_batches=1))
    servable = FakeServable(fn, gate=gate)
    first = start_blocked(handlers.batcher, servable)
    (second,) = queue_behind(handlers.batcher, servable, [{"x": np.array([-1.0], np.float32)}])
    with pytest.raises(RequestError) as full:
        handlers.run(servable, "serving_default", {"x": np.array([1.0], np.float32)}, "the fake")
    assert full.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    gate.set()
    first.outcome()
    with pytest.raises(ValueError):
        second.outcome()  # the batcher hands back the model's own error ...
    with pytest.raises(RequestError) as bad:  # ... which Handlers.run turns into INVALID_ARGUMENT
        handlers.run(servable, "serving_default", {"x": np.array([-2.0], np.float32)}, "the fake")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.message == "the fake failed: x must not be negative"
