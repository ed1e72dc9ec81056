"""The bridge's decisions about a chunk, against a fake model server and a fake queue."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from mlbridge import serving_client as sc
from mlbridge.bridge import rows as r
from mlbridge.bridge.catalog import ModelSpec, RequestMismatch
from mlbridge.bridge.queue import Chunk
from mlbridge.bridge.scoring import Done, Fail, Release, Retry, Work, decide
from mlbridge.bridge.source import ChunkRows
from mlbridge.bridge.worker import Bridge, BridgeConfig
from mlbridge.config import Dsn

MODEL = ModelSpec([r.Input("a", "float32"), r.Input("b", "float32")], "score")


class FakeServer:
    """Scores a + b; refuses any batch holding a = 13 (as a model refuses a bad input)."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls = 0

    def predict(self, name, version, inputs):
        self.calls += 1
        if self.error is not None:
            raise self.error
        if (inputs["a"] == 13).any():
            raise sc.InvalidRequest(grpc.StatusCode.INVALID_ARGUMENT, "a = 13 is not allowed")
        return {"score": inputs["a"] + inputs["b"]}


def chunk(attempts=1, max_attempts=5):
    return Chunk(7, 3, 1, 4, "m", 1, attempts, max_attempts)


def work(values, model=MODEL):
    seqs = list(range(1, len(values) + 1))
    return Work(chunk(), ChunkRows(seqs, [list(c) for c in zip(*values)]), model)


def test_every_row_scored():
    outcome = decide(work([[1, 2], [3, 4]]), FakeServer())
    assert isinstance(outcome, Done)
    assert [(x.seq, x.score, x.error) for x in outcome.results] == [(1, 3.0, None), (2, 7.0, None)]


def test_a_refused_row_is_found_by_bisection_and_fails_alone():
    server = FakeServer()
    values = [[i, 1] for i in range(1, 17)]
    outcome = decide(work(values), server)
    assert isinstance(outcome, Done)
    failed = [x for x in outcome.results if x.error]
    assert [x.seq for x in failed] == [13] and "the model refused this row: a = 13" in failed[0].error
    assert len([x for x in outcome.results if x.score is not None]) == 15
    assert server.calls <= 2 * 4 + 1  # log2(16) levels, two calls each, plus the first


def test_a_bad_value_fails_its_row_and_the_rest_are_scored():
    outcome = decide(work([[1, 2], [None, 4], ["1_000", 1], [10**400, 1], [5, 6]]), FakeServer())
    errors = {x.seq: x.error for x in outcome.results if x.error}
    assert set(errors) == {2, 3, 4}
    assert "column a: NULL" in errors[2] and "not a number" in errors[3] and "out of range" in errors[4]
    assert [x.score for x in outcome.results if not x.error] == [3.0, 11.0]


def test_a_down_server_releases_the_chunk_without_an_attempt():
    outcome = decide(work([[1, 2]]), FakeServer(sc.ServerUnavailable(grpc.StatusCode.UNAVAILABLE, "down")))
    assert isinstance(outcome, Release) and outcome.delay >= 0


def test_an_unknown_model_is_retried_then_fails():
    error = sc.ModelNotFound(grpc.StatusCode.NOT_FOUND, "no model m")
    assert isinstance(decide(work([[1, 2]]), FakeServer(error)), Retry)
    last = work([[1, 2]])
    last.chunk = chunk(attempts=5)
    outcome = decide(last, FakeServer(error))
    assert isinstance(outcome, Fail) and "no model m" in outcome.message


def test_an_unexpected_error_stays_with_its_chunk():
    outcome = decide(work([[1, 2]]), FakeServer(ZeroDivisionError("boom")))
    assert isinstance(outcome, Retry) and "ZeroDivisionError: boom" in outcome.message
    broken = Work(chunk(), error=OverflowError("int too large"))
    assert isinstance(decide(broken, FakeServer()), Retry)


def test_a_request_that_does_not_fit_the_model_fails_at_once():
    outcome = decide(Work(chunk(), error=RequestMismatch("mlbridge: model m:1 takes inputs [a]")), FakeServer())
    assert isinstance(outcome, Fail) and "takes inputs" in outcome.message


class FakeQueue:
    def __init__(self, claim_holds=True):
        self.calls = []
        self.claim_holds = claim_holds
        self.conn = None

    def close(self, chunk, results, writer, state="done", error=None):
        self.calls.append(("close", chunk.id, state, [x.seq for x in results], error))
        return self.claim_holds

    def release(self, chunk, delay):
        self.calls.append(("release", chunk.id))

    def retry(self, chunk, message, delay):
        self.calls.append(("retry", chunk.id, message))

    def record_error(self, chunk, message):
        self.calls.append(("record_error", chunk.id, message))


class FakeSource:
    def seqs(self, chunk, spec):
        return [2, 3]


@pytest.fixture
def bridge():
    b = Bridge(BridgeConfig(dsn=Dsn(), server="127.0.0.1:1", local_infile=False))
    b.catalog.request = lambda conn, request_id: None
    yield b
    b.client.close()


@pytest.mark.parametrize("outcome, expected", [
    (Done([r.Result(1, 0.5, "{}")]), [("close", 7, "done", [1], None)]),
    (Release(0.1, "down"), [("release", 7)]),
    (Retry("mlbridge: x", 1.0), [("retry", 7, "mlbridge: x")]),
    (Fail("mlbridge: gone"), [("record_error", 7, "mlbridge: gone"),
                              ("close", 7, "failed", [2, 3], "mlbridge: gone")]),
])
def test_the_write_stage_applies_each_outcome(bridge, outcome, expected):
    queue = FakeQueue()
    bridge._apply(queue, FakeSource(), None, chunk(), outcome)
    assert queue.calls == expected


def test_a_lost_claim_writes_nothing_and_is_counted(bridge):
    queue = FakeQueue(claim_holds=False)
    bridge._apply(queue, FakeSource(), None, chunk(), Done([r.Result(1, 0.5, "{}")]))
    assert bridge.chunks_done == 0


def test_batch_take_keeps_rows_and_arrays_together():
    batch = r.Batch([1, 2, 3], {"a": np.array([1.0, 2.0, 3.0])})
    half = batch.take(slice(1, None))
    assert half.seqs == [2, 3] and half.inputs["a"].tolist() == [2.0, 3.0]
