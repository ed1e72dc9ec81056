"""model_channel.Channel: messages between the front and a model process, over a real socket
pair, as the request connections carry them."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest

from mlbridge_server.serving.model_channel import Channel


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield Channel(a.fileno()), Channel(b.fileno()), a, b
    a.close()
    b.close()


def echo_in_thread(channel: Channel, times: int = 1) -> threading.Thread:
    def run() -> None:
        for _ in range(times):
            channel.send(channel.recv())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


ARRAYS = {
    "float": np.arange(1024, dtype=np.float32),
    "matrix_f_order": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "strided": np.arange(20, dtype=np.int64)[::3],  # not contiguous: pickled in band
    "strings": np.array([b"a", "\u00e9".encode(), b""], dtype=object),
    "empty": np.zeros((0, 8), dtype=np.int32),
    "scalar": np.float64(3.25),
    "bools": np.array([True, False, True]),
}


def test_a_message_of_arrays_comes_back_as_it_went(pair):
    front, child, *_ = pair
    thread = echo_in_thread(child)
    front.send(("serving_default", ARRAYS))
    name, got = front.recv()
    thread.join(5)
    assert name == "serving_default" and set(got) == set(ARRAYS)
    for key, want in ARRAYS.items():
        assert np.asarray(got[key]).dtype == np.asarray(want).dtype, key
        np.testing.assert_array_equal(got[key], want)
    got["float"][0] = 7  # arrays received are views of a buffer of their own: writable
    assert ARRAYS["float"][0] == 0


def test_a_message_larger_than_the_socket_buffer(pair):
    """Megabytes: many writes and reads, one message."""
    front, child, *_ = pair
    thread = echo_in_thread(child, times=2)
    big = {f"x{i}": np.random.default_rng(i).standard_normal(300_000) for i in range(8)}  # 19 MB
    for _ in range(2):
        front.send(("sig", big))
        _, got = front.recv()
        for key in big:
            np.testing.assert_array_equal(got[key], big[key])
    thread.join(5)


def test_many_buffers_are_written_in_turns(pair):
    """More arrays than one writev takes (IOV_MAX)."""
    front, child, *_ = pair
    thread = echo_in_thread(child)
    many = {f"x{i}": np.full(3, i, dtype=np.int16) for i in range(1500)}
    front.send(("sig", many))
    _, got = front.recv()
    thread.join(5)
    assert all(got[k].tolist() == [i] * 3 for i, k in enumerate(many))


def test_the_other_end_closing_is_eof(pair):
    front, child, a, b = pair
    b.close()
    with pytest.raises(EOFError):
        front.recv()


def test_a_message_cut_short_is_eof_not_a_wrong_message(pair):
    front, child, a, b = pair
    front.send(("sig", {"x": np.arange(5_000)}))  # fits in the socket buffer: nobody reads it yet
    data = b.recv(1000)
    c, d = socket.socketpair()
    try:
        c.sendall(data)  # the first 1,000 bytes of the message, then the end
        c.close()
        with pytest.raises(EOFError, match="inside a message"):
            Channel(d.fileno()).recv()
    finally:
        d.close()


def test_bytes_beyond_the_frame_are_refused(pair):
    """One message in flight each way: bytes after a frame mean the two ends disagree."""
    front, child, a, b = pair
    front.send(("sig", {}))
    os.write(a.fileno(), b"junk")
    with pytest.raises(OSError, match="more than its frame declares"):
        child.recv()
