"""What the request being answered resolved to: its model and version, for the metrics and the
log lines of the thread that answers it.

service._answer opens a record for each call (``recording()``); whatever resolves the request to
a servable notes it (``resolved(servable)``: Handlers does, for every protocol that goes through
it). A gRPC worker thread answers many calls one after another, so the record is a context
variable set and reset around each call, never a thread attribute left behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    model: str = ""
    # "" until the request resolved to a servable (an unknown model or version, a refused call).
    version: str = ""


_current: ContextVar[Call | None] = ContextVar("mlbridge_serving_call", default=None)


@contextlib.contextmanager
def recording(model: str = "") -> Iterator[Call]:
    """A record for the call answered inside the block; ``model`` is the name the request asked
    for, replaced by the servable's once it resolves."""
    call = Call(model=model)
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


def resolved(servable: Any) -> None:
    """Note the servable the current call resolved to (no call being recorded: nothing)."""
    call = _current.get()
    if call is not None:
        call.model = str(servable.name)
        call.version = str(servable.version)


def current() -> Call | None:
    return _current.get()


class CallFilter(logging.Filter):
    """Adds ``model`` and ``version`` to log records written while a call is answered (where the
    record does not carry its own), so that JSON lines name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _current.get()
        if call is not None:
            if call.model and not hasattr(record, "model"):
                record.model = call.model
            if call.version and not hasattr(record, "version"):
                record.version = call.version
        return True
