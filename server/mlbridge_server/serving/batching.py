"""Dynamic batching: concurrent requests for the same servable and signature
run as one call.

How a request goes through (``Batcher.run``):

- Requests are queued per loaded servable, signature and input layout (each
  input's name, dtype kind and trailing dimensions: rows that cannot be
  stacked never share a queue).
- A request that arrives while no batch of its queue is running runs at once,
  in its own thread: batching never delays a lone request.
- While batches of its queue are running, a request joins the open batch of
  the queue (or opens one). A batch starts when a running batch of its queue
  finishes and none is left running, or when fewer than ``num_batch_threads``
  of its queue are running and it is full (``max_batch_size`` rows, or the
  next request did not fit) or ``batch_timeout_micros`` have passed since it
  opened. So the timeout only bounds how long a batch waits to fill while
  others run.
- Batches of a queue start in arrival order. A request with more rows than
  ``max_batch_size`` is a batch of its own, never split.
- The thread of a batch's first request runs the batch and hands the other
  requests their rows: the gRPC threads that wait for answers anyway do the
  work, and no thread of this module's own exists. ``num_batch_threads`` is
  therefore how many batches of one queue run at the same time; the gRPC
  thread pool bounds the whole server.
- More than ``max_enqueued_batches`` batches waiting in one queue: the request
  is refused with RESOURCE_EXHAUSTED.

Which signatures are batched: every input has rank >= 1 with a variable
leading dimension in the signature (-1, or unknown rank), and no output is
declared a scalar or with a fixed leading dimension. The outputs of a batched
call are split by their leading dimension; if one does not have one row per
input row, the requests run alone and the signature is remembered as not
batchable for that servable. Like TF Serving, batching assumes a signature
computes each row on its own (true of the trainer's models); a signature that
mixes rows (a mean over the batch, say) must keep a fixed or scalar output
shape in its signature, or the server must run with batching off.

If a batched call fails, every request of the batch runs again alone, so that
only the request at fault gets the error. Float results of a batched call can
differ from a lone call's in the last bits (TensorFlow's kernels may sum in
another order for another batch size).

Queues are held in a weak mapping keyed by the servable object: when the
registry drops a version and the last request on it ends, its queues go with
it. Requests batch together only when they resolve to the same object, as the
registry's loaded versions do (a registry that made a new proxy object per
request would get no batching).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlbridge.serving_constants import INIT_OP_SIGNATURE
from mlbridge.serving_settings import ENV_PREFIX  # named in messages

from .errors import RequestError, resource_exhausted

log = logging.getLogger(__name__)

# A signature whose batchability has not been looked at yet.
_UNCHECKED: Any = object()



@dataclass(frozen=True)
class BatchingSettings:
    """Dynamic batching's settings. The defaults suit a 2-core machine: two
    batches of a queue at once, a 1 ms wait to fill a batch while others run."""

    enable_batching: bool = True
    # Rows of one batched call (a request's leading dimension counts its rows).
    max_batch_size: int = 1024
    # How long a batch may wait to fill while other batches of its queue run.
    batch_timeout_micros: int = 1000
    # Batches of one (servable, signature) queue that run at the same time.
    num_batch_threads: int = 2
    # Batches that may wait in one queue; one more is refused RESOURCE_EXHAUSTED.
    max_enqueued_batches: int = 64

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            problem = _problem(name, getattr(self, name))
            if problem is not None:
                raise ValueError(f"batching setting {name} {problem}, got {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> BatchingSettings:
        """The batching fields of the server's settings object (ServerSettings:
        flags, MLBRIDGE_SERVING_* variables and the settings file)."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


def _problem(name: str, value: Any) -> str | None:
    """What is wrong with a batching setting's value, or None."""
    if name == "enable_batching":
        return None if isinstance(value, bool) else "must be true or false"
    least = 0 if name == "batch_timeout_micros" else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return f"must be a whole number >= {least}"
    return None


class BatchRecorder(Protocol):
    def observe_batch(self, model: str, version: int, rows: int) -> None: ...

    def observe_queue_delay(self, model: str, version: int, seconds: float) -> None: ...


class NoBatchRecorder:
    """Records nothing."""

    def observe_batch(self, model: str, version: int, rows: int) -> None:
        pass

    def observe_queue_delay(self, model: str, version: int, seconds: float) -> None:
        pass


def batch_recorder(recorder: Any) -> BatchRecorder:
    """``recorder`` when it has observe_batch and observe_queue_delay (the
    server's metrics), else a recorder that records nothing."""
    if callable(getattr(recorder, "observe_batch", None)) and callable(
        getattr(recorder, "observe_queue_delay", None)
    ):
        return recorder
    return NoBatchRecorder()


def queue_full(where: str, waiting: int) -> RequestError:
    return resource_exhausted(
        f"the batch queue of {where} is full ({waiting} batches waiting, the most "
        f"{ENV_PREFIX}MAX_ENQUEUED_BATCHES allows): retry later, or send fewer requests at once",
    )


def signature_unbatchable(signature: Any) -> str | None:
    """Why a SignatureDef's calls cannot be stacked into one, or None when
    they can: every input needs a variable leading dimension, and no output
    may be declared a scalar or with a fixed leading dimension."""
    if not signature.inputs:
        return "it takes no inputs"
    for key in sorted(signature.inputs):
        shape = signature.inputs[key].tensor_shape
        if shape.unknown_rank:
            continue
        if not shape.dim:
            return f'input "{key}" is a scalar'
        if shape.dim[0].size >= 0:
            return f'input "{key}" has a fixed leading dimension ({shape.dim[0].size})'
    for key in sorted(signature.outputs):
        shape = signature.outputs[key].tensor_shape
        if shape.unknown_rank:
            continue
        if not shape.dim:
            return f'output "{key}" is a scalar'
        if shape.dim[0].size >= 0:
            return f'output "{key}" has a fixed leading dimension ({shape.dim[0].size})'
    return None


def _layout(arrays: Mapping[str, np.ndarray]) -> tuple[tuple, int] | None:
    """(the key of the queue these inputs can share, their rows), or None
    when they cannot be stacked with others (a scalar, rows that disagree).

    The key holds each input's name, dtype and trailing dimensions, in the
    order of ``arrays`` (check_inputs builds them sorted by name). Strings
    are decoded as object arrays, so texts of any length share a queue."""
    key = []
    rows = None
    for name, array in arrays.items():
        shape = array.shape
        if not shape:
            return None
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            return None
        key.append((name, array.dtype, shape[1:]))
    if rows is None:
        return None
    return tuple(key), rows


def _split(outputs: Mapping[str, Any], sizes: list[int], total: int):
    """The batched call's outputs cut into each request's rows, or a reason
    why they cannot be (an output without one row per input row)."""
    arrays = {}
    for key in sorted(outputs):
        value = np.asarray(outputs[key])
        if value.ndim == 0 or value.shape[0] != total:
            return None, (
                f'output "{key}" has shape {list(value.shape)} for {total} rows in, '
                "not one row per input row"
            )
        arrays[key] = value
    offsets = np.cumsum(sizes)[:-1]
    parts: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for key, value in arrays.items():
        for part, piece in zip(parts, np.split(value, offsets)):
            part[key] = piece
    return parts, None


class _Task:
    __slots__ = ("arrays", "rows", "enqueued", "done", "result", "error")

    def __init__(self, arrays: Mapping[str, np.ndarray], rows: int, enqueued: float):
        self.arrays = arrays
        self.rows = rows
        self.enqueued = enqueued
        # Set for a request that waits for another thread to run its batch
        # (made under the queue's lock when it joins, before that batch can start).
        self.done: threading.Event | None = None
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        if self.done is not None:
            self.done.set()

    def outcome(self) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Batch:
    __slots__ = ("tasks", "rows", "opened", "closed")

    def __init__(self, task: _Task, closed: bool):
        self.tasks = [task]
        self.rows = task.rows
        self.opened = task.enqueued
        # Closed: takes no more requests (full, or started).
        self.closed = closed


class _Queue:
    __slots__ = ("waiting", "running")

    def __init__(self) -> None:
        self.waiting: deque[_Batch] = deque()
        self.running = 0


class _ServableQueues:
    """The queues of one servable. Holds no reference to the servable itself,
    so that dropping the servable drops these."""

    def __init__(self, model: str, version: int):
        self.model = model
        self.version = version
        self.cond = threading.Condition(threading.Lock())
        self.queues: dict[tuple, _Queue] = {}
        # signature -> why it is not batched (None: it is)
        self.unbatchable: dict[str, str | None] = {}


class Batcher:
    """Runs signatures of servables, batching concurrent calls (see the module's text)."""

    def __init__(self, settings: BatchingSettings | None = None, recorder: Any = None):
        self.settings = settings or BatchingSettings()
        self.recorder = batch_recorder(recorder)
        self._lock = threading.Lock()
        self._servables: weakref.WeakKeyDictionary[Any, _ServableQueues] = (
            weakref.WeakKeyDictionary()
        )
        self._warned_no_weakref = False

    def servables_with_queues(self) -> int:
        """How many servables have queue state here (dropped ones do not count)."""
        with self._lock:
            return len(self._servables)

    def open_queues(self) -> int:
        """Queues holding or running a batch now, over every servable."""
        with self._lock:
            owners = list(self._servables.values())
        total = 0
        for owner in owners:
            with owner.cond:
                total += len(owner.queues)
        return total

    def run(
        self, servable: Any, signature_name: str, arrays: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The outputs of ``servable.run(signature_name, arrays)``, or the
        exception that call raises for these inputs, possibly computed in one
        call with other requests' rows. Raises RequestError RESOURCE_EXHAUSTED
        when the queue is full."""
        if not self.settings.enable_batching:
            return servable.run(signature_name, arrays)
        owner = self._owner(servable)
        if owner is None:
            return self._alone(servable, signature_name, arrays, None)
        with owner.cond:
            reason = owner.unbatchable.get(signature_name, _UNCHECKED)
        if reason is _UNCHECKED:
            reason = self._check_signature(servable, signature_name)
            with owner.cond:
                owner.unbatchable.setdefault(signature_name, reason)
        layout = _layout(arrays) if reason is None else None
        if layout is None or layout[1] == 0:
            return self._alone(servable, signature_name, arrays, owner)
        key, rows = layout
        return self._queued(servable, owner, (signature_name, key), signature_name, arrays, rows)

    # -- bookkeeping ----------------------------------------------------------

    def _owner(self, servable: Any) -> _ServableQueues | None:
        with self._lock:
            try:
                owner = self._servables.get(servable)
                if owner is None:
                    owner = _ServableQueues(str(servable.name), int(servable.version))
                    self._servables[servable] = owner
                return owner
            except TypeError:  # cannot be weakly referenced: never batched
                if not self._warned_no_weakref:
                    self._warned_no_weakref = True
                    log.warning(
                        "%s cannot be weakly referenced: its requests are not batched",
                        type(servable).__name__,
                    )
                return None

    @staticmethod
    def _check_signature(servable: Any, signature_name: str) -> str | None:
        signatures = servable.signature_defs.signature_def
        if signature_name not in signatures or signature_name == INIT_OP_SIGNATURE:
            return "no such signature"
        reason = signature_unbatchable(signatures[signature_name])
        if reason is not None:
            log.info(
                'model %s version %s: signature "%s" is not batched: %s',
                servable.name, servable.version, signature_name, reason,
            )
        return reason

    def _alone(
        self, servable: Any, signature_name: str, arrays: Mapping[str, np.ndarray],
        owner: _ServableQueues | None,
    ) -> dict[str, np.ndarray]:
        """Run one request by itself, at once (a signature that is not batched)."""
        if owner is not None:
            first = next(iter(arrays.values()), None)
            rows = first.shape[0] if first is not None and first.ndim else 1
            self.recorder.observe_queue_delay(owner.model, owner.version, 0.0)
            self.recorder.observe_batch(owner.model, owner.version, rows)
        return servable.run(signature_name, arrays)

    # -- the queue ------------------------------------------------------------

    def _queued(
        self, servable: Any, owner: _ServableQueues, key: tuple, signature_name: str,
        arrays: Mapping[str, np.ndarray], rows: int,
    ) -> dict[str, np.ndarray]:
        settings = self.settings
        limit = settings.max_batch_size
        task = _Task(arrays, rows, time.monotonic())
        cond = owner.cond
        with cond:
            queue = owner.queues.get(key)
            if queue is None:
                queue = owner.queues[key] = _Queue()
            if queue.running == 0 and not queue.waiting:
                # Nothing of this queue runs: go now, alone.
                batch = _Batch(task, closed=True)
                queue.running += 1
            else:
                last = queue.waiting[-1] if queue.waiting else None
                if last is not None and not last.closed and last.rows + rows <= limit:
                    task.done = threading.Event()
                    last.tasks.append(task)
                    last.rows += rows
                    if last.rows >= limit:
                        last.closed = True
                        cond.notify_all()
                    joined = True
                else:
                    if len(queue.waiting) >= settings.max_enqueued_batches:
                        raise queue_full(
                            f'signature "{signature_name}" of model "{owner.model}" '
                            f"version {owner.version}",
                            len(queue.waiting),
                        )
                    if last is not None and not last.closed:
                        last.closed = True  # the next request did not fit: it is full
                        cond.notify_all()
                    queue.waiting.append(_Batch(task, closed=rows >= limit))
                    joined = False
                if joined:
                    batch = None
                else:
                    batch = queue.waiting[-1]
                    self._wait_turn(cond, queue, batch)
        if batch is None:
            assert task.done is not None
            task.done.wait()
            return task.outcome()
        try:
            self._execute(servable, owner, signature_name, batch)
        finally:
            with cond:
                queue.running -= 1
                if queue.waiting:  # their leaders wait for a free thread or an idle queue
                    cond.notify_all()
                elif queue.running == 0 and owner.queues.get(key) is queue:
                    del owner.queues[key]
            for other in batch.tasks:
                if other.result is None and other.error is None:  # only when _execute itself failed
                    other.error = RuntimeError("the batch this request was in did not run")
                    other.finish()
        return task.outcome()

    def _wait_turn(self, cond: threading.Condition, queue: _Queue, batch: _Batch) -> None:
        """Wait (holding ``cond``) until ``batch`` may start, then mark it running."""
        timeout = self.settings.batch_timeout_micros / 1e6
        threads = self.settings.num_batch_threads
        while True:
            wait: float | None = None
            if queue.waiting[0] is batch and queue.running < threads:
                if batch.closed or queue.running == 0:
                    break
                wait = batch.opened + timeout - time.monotonic()
                if wait <= 0:
                    break
            cond.wait(wait)
        queue.waiting.popleft()
        batch.closed = True
        queue.running += 1
        if queue.waiting:
            cond.notify_all()  # the next batch is now at the head

    def _execute(
        self, servable: Any, owner: _ServableQueues, signature_name: str, batch: _Batch
    ) -> None:
        started = time.monotonic()
        tasks = batch.tasks
        for task in tasks:
            self.recorder.observe_queue_delay(owner.model, owner.version, started - task.enqueued)
        if len(tasks) == 1:
            self._run_alone(servable, owner, signature_name, tasks[0])
            return
        parts = None
        try:
            names = list(tasks[0].arrays)
            stacked = {name: np.concatenate([t.arrays[name] for t in tasks]) for name in names}
            outputs = servable.run(signature_name, stacked)
            parts, reason = _split(outputs, [t.rows for t in tasks], batch.rows)
            if parts is None:
                with owner.cond:
                    owner.unbatchable[signature_name] = reason
                log.warning(
                    'model %s version %s: signature "%s" is no longer batched: %s',
                    owner.model, owner.version, signature_name, reason,
                )
        except Exception as e:  # one request's bad value, most likely: find whose
            log.debug(
                "a batch of %d requests to %s:%s failed (%s): running each alone",
                len(tasks), owner.model, owner.version, e,
            )
        if parts is None:
            for task in tasks:
                self._run_alone(servable, owner, signature_name, task)
            return
        self.recorder.observe_batch(owner.model, owner.version, batch.rows)
        log.debug(
            "model %s version %s: one call ran %d requests, %d rows",
            owner.model, owner.version, len(tasks), batch.rows,
        )
        for task, part in zip(tasks, parts):
            task.result = part
            task.finish()

    def _run_alone(
        self, servable: Any, owner: _ServableQueues, signature_name: str, task: _Task
    ) -> None:
        self.recorder.observe_batch(owner.model, owner.version, task.rows)
        try:
            task.result = servable.run(signature_name, task.arrays)
        except Exception as e:  # delivered to the request's own thread
            task.error = e
        finally:
            task.finish()
