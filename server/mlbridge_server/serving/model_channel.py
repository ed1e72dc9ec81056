"""One message each way per call between the front and a model process.

A request connection carries (signature name, {input: ndarray}) to the model
process and ("ok", {output: ndarray}) or ("error", message) back. This is on
every call's path, so each message crosses as one write and, most of the
time, one read:

- the arrays travel out of band (pickle protocol 5): their bytes are written
  as they lie in memory, not copied into the pickle stream, and the arrays
  decoded on the other side are views of the received buffer;
- the header, the pickle stream and the arrays go out in one ``writev``.
  multiprocessing's Connection.send writes a message over 16 KiB as two
  writes, so the reader woke for the 4-byte length, then slept again until
  the rest came: a 1,024-row request of 8 inputs (32 KiB) paid for two
  wake-ups where one does.

Frame: ``<Q`` the length of what follows; ``<I`` the pickle stream's length,
``<I`` the number of buffers, ``<Q`` each buffer's length; the pickle stream;
the buffers. The two ends are the front and a model process forked from the
same code, so the pickles are trusted as multiprocessing's are.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

_LENGTH = struct.Struct("<Q")
_COUNTS = struct.Struct("<II")
# The most iovecs one writev takes (IOV_MAX is 1,024 on Linux); more buffers are written in turns.
_IOV_MAX = 1024
# A first read this large takes a typical message whole.
_FIRST_READ = 1 << 16


class Channel:
    """Framed messages over one end of a connection (a socket or pipe file
    descriptor; the Connection keeps owning it). One message in flight each
    way at a time, as the request connections are used."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, obj: Any) -> None:
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        sizes = b"".join(_LENGTH.pack(r.nbytes) for r in raws)
        head = _COUNTS.pack(len(body), len(raws)) + sizes
        total = len(head) + len(body) + sum(r.nbytes for r in raws)
        _write_all(self.fd, [_LENGTH.pack(total) + head, body, *raws])

    def recv(self) -> Any:
        first = os.read(self.fd, _FIRST_READ)
        if not first:
            raise EOFError("the other end closed the connection")
        while len(first) < _LENGTH.size:
            more = os.read(self.fd, _LENGTH.size - len(first))
            if not more:
                raise EOFError("the connection closed inside a message")
            first += more
        (total,) = _LENGTH.unpack_from(first)
        end = _LENGTH.size + total
        if len(first) > end:
            raise OSError(f"a message of {len(first) - end} bytes more than its frame declares")
        data = bytearray(end)
        data[: len(first)] = first
        view = memoryview(data)
        filled = len(first)
        while filled < end:
            n = os.readv(self.fd, [view[filled:]])
            if n == 0:
                raise EOFError("the connection closed inside a message")
            filled += n
        body_size, count = _COUNTS.unpack_from(data, _LENGTH.size)
        at = _LENGTH.size + _COUNTS.size
        sizes = [_LENGTH.unpack_from(data, at + i * _LENGTH.size)[0] for i in range(count)]
        at += count * _LENGTH.size
        body = view[at : at + body_size]
        at += body_size
        buffers = []
        for size in sizes:
            buffers.append(view[at : at + size])
            at += size
        if at != end:
            raise OSError(f"a message whose parts take {at} bytes of its {end}")
        return pickle.loads(body, buffers=buffers)


def _write_all(fd: int, parts: list[Any]) -> None:
    """writev until every byte of ``parts`` is written (a write may stop short)."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
