"""The Redis store's ``socket_timeout``, kept by the kernel on its sockets.

Python's socket timeout polls the socket before every send and receive (two
system calls more per command); the store's connections leave the socket
blocking, with the kernel's send and receive timeouts, and a stalled server
still ends a command after ``socket_timeout`` with a timeout. (Green sockets
keep Python's timeout: see test_greenlets.)
"""

from __future__ import annotations

import signal
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from servers import ServerProcess

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores.redis import RedisStore

TIMEOUT = 0.5


def later() -> float:
    return time.time() + 600


def connected_sockets(store: RedisStore) -> list[socket.socket]:
    pool = store._client.connection_pool
    return [c._sock for c in pool._connections if c._sock is not None]


def timeval(sock: socket.socket, option: int) -> float:
    seconds, microseconds = struct.unpack(
        "ll", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll"))
    )
    return seconds + microseconds / 1_000_000


@pytest.fixture
def stalled(fresh_redis: ServerProcess) -> Iterator[ServerProcess]:
    """A server that the test stops (SIGSTOP) and that goes on afterwards."""
    yield fresh_redis
    assert fresh_redis.proc is not None
    fresh_redis.proc.send_signal(signal.SIGCONT)


def stop(server: ServerProcess) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def test_connections_wait_by_the_kernels_timeouts(clean_redis: ServerProcess) -> None:
    """Blocking sockets (no poll before each call) with ``socket_timeout`` as
    their send and receive timeouts (a unix socket's: test_store_url_spellings)."""
    store = RedisStore(clean_redis.url, socket_timeout=1.25)
    try:
        store.create(generate_key(), b"x", later())
        (sock,) = connected_sockets(store)
        assert sock.gettimeout() is None
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):  # to the kernel's tick
            assert timeval(sock, option) == pytest.approx(1.25, abs=0.011)
    finally:
        store.close()


@pytest.mark.slow
def test_a_stalled_reply_ends_in_a_timeout(stalled: ServerProcess) -> None:
    store = RedisStore(stalled.url, socket_timeout=TIMEOUT)
    key = generate_key()
    store.create(key, b"before", later())
    stop(stalled)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="TimeoutError: Timeout reading"):
        store.load(key)
    assert TIMEOUT * 0.9 < time.monotonic() - started < TIMEOUT * 4
    assert stalled.proc is not None
    stalled.proc.send_signal(signal.SIGCONT)
    record = store.load(key)  # a new connection: the timed-out one was closed
    assert record is not None and record.payload == b"before"
    store.close()


@pytest.mark.slow  # a 64 MB record: about 1.7 s
def test_a_send_the_server_does_not_take_ends_in_a_timeout(
    stalled: ServerProcess,
) -> None:
    """A record too big for the socket buffers of a stopped server: the
    send, not only the reply, is bounded by ``socket_timeout``."""
    store = RedisStore(stalled.url, socket_timeout=TIMEOUT)
    store.load(generate_key())  # connected
    record = b"x" * (64 << 20)
    stop(stalled)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="TimeoutError: Timeout writing"):
        store.create(generate_key(), record, later())
    # Not a wait for ever: packing and sending 64 MB before the socket
    # buffers fill took 1.2-1.5 s on a loaded machine, on top of the timeout.
    assert time.monotonic() - started < TIMEOUT + 10
    store.close()
