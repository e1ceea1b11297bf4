"""A MemcachedStore's connection pool under exceptions that arrive between
its steps: a signal handler's ``KeyboardInterrupt`` or a ``SIGALRM`` request
timeout, an exception sent with ``PyThreadState_SetAsyncExc``.

One that landed after a connection was taken and before the ``try`` that
gives it back lost one of the server's :data:`MAX_CONNECTIONS` for the
life of the process; once all were lost, every command waited
``POOL_WAIT`` and failed. :func:`interrupting.interrupted_on` raises one at
each point of the pool's code in turn, on a real memcached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import pytest
from interrupting import STEPS, Interrupt, ends_within, in_module, interrupted_on
from servers import ServerProcess

from wsgisession.errors import StoreUnavailable
from wsgisession.stores import MemcachedStore
from wsgisession.stores import _memcached_servers as memcached_servers
from wsgisession.stores._memcached_clients import LOST_RECHECK

#: The pool's code: every point of it where Python checks for a signal.
#: (Not the finalizer that frees a lost client's slot: an interrupt there
#: is a second one, landing as the first unwinds.)
POOL_CODE = in_module(memcached_servers.__file__)


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two connections per server, waited for 0.2 s: a slot lost shows at once."""
    monkeypatch.setattr(memcached_servers, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(memcached_servers, "POOL_WAIT", 0.2)


def _interrupt_everywhere(
    server: ServerProcess, step: Callable[[MemcachedStore, str], object]
) -> Iterator[int]:
    """Run ``step`` interrupted at its ``nth`` point in the pool's code, for
    each ``nth`` until one runs to its end: on a new store (its first
    connection is made), then again on it (an idle one is taken). Yield
    each ``nth`` after checking what its interrupts left behind."""
    with MemcachedStore(server.address) as writer:
        key = writer.generate_key()
        assert writer.create(key, b"", time.time() + 600) == key
    nth = 1
    while True:
        store = MemcachedStore(server.address)
        try:
            for _ in range(2):
                with interrupted_on(POOL_CODE, nth) as shot:
                    try:
                        step(store, key)
                    except Interrupt:
                        pass
                if not shot.fired:
                    return
                _assert_nothing_lost(store, key, nth)
            yield nth
        finally:
            store.close()
        nth += 1


def _assert_nothing_lost(store: MemcachedStore, key: str, nth: int) -> None:
    """All of the pool's connections can be held at once, and the store
    still answers (in a thread: a pool's lock kept by the interrupt would
    hang it)."""

    def use_every_slot() -> None:
        (server,) = store._servers
        with server.held() as first, server.held() as second:
            assert first("gets", "k") == second("gets", "k") == (None, None)
        assert store.load(key) is not None

    ends_within(use_every_slot, f"the pool after an interrupt at point {nth}")


@pytest.mark.usefixtures("small_pool")
@pytest.mark.parametrize("name", sorted(STEPS))
def test_an_interrupt_anywhere_in_the_pool_loses_no_connection(
    clean_memcached: ServerProcess, name: str
) -> None:
    """Interrupted at any point of the pool's code, a command leaves every
    connection it took back in the pool (or its slot free again), and the
    pool's lock free: before, an interrupt as the idle connection was
    popped, as a new one was made or handed over, lost a slot for good."""
    points = list(_interrupt_everywhere(clean_memcached, STEPS[name]))
    assert len(points) > 5, points  # the sweep reached the pool's code


@pytest.mark.usefixtures("small_pool")
def test_connections_taken_as_an_interrupt_lands_come_back(
    clean_memcached: ServerProcess,
) -> None:
    """Three requests, each interrupted just as it took a connection (an
    idle one popped, or a new one handed over) and before the ``try`` that
    gives it back, in a pool of two: the fourth request is served at
    once, not after ``POOL_WAIT`` with ``StoreUnavailable``."""
    store = MemcachedStore(clean_memcached.address)
    key = store.generate_key()
    assert store.create(key, b"", time.time() + 600) == key
    try:
        for _ in range(3):
            with pytest.raises(Interrupt), interrupted_on(_taken):
                store.load(key)
        start = time.monotonic()
        assert store.load(key) is not None
        assert time.monotonic() - start < 0.1
        _assert_nothing_lost(store, key, 3)
    finally:
        store.close()


def _taken(frame: FrameType, event: str, arg: object) -> bool:
    """A hit for a connection just taken: ``deque.pop`` has returned one in
    ``Server._run``, or ``Server._take_new`` returns a new one."""
    code = frame.f_code
    if event == "c_return" and code is memcached_servers.Server._run.__code__:
        return getattr(arg, "__name__", None) == "pop"
    return event == "return" and code is memcached_servers.Server._take_new.__code__


def _asking_taken(frame: FrameType, event: str, arg: object) -> bool:
    """A hit for the asking lock of a server that failed lately handed to
    the request that asks it (``Server._may_ask`` returns it)."""
    return (
        event == "return" and frame.f_code is memcached_servers.Server._may_ask.__code__
    )


@pytest.mark.slow
def test_an_interrupt_as_a_request_starts_asking_a_failed_server_bars_it_not_for_good(
    fresh_memcached: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a failure, one request at a time asks the server, holding a
    lock while it does. Interrupted as it took that lock, before the
    ``try`` that releases it, a request kept it for good: every later
    command to the server, up again, raised ``ServerDown`` for the life of
    the process. Now a lock held longer than any asker holds one (its
    pool wait and three connect-and-reply timeouts) is taken over."""
    monkeypatch.setattr(memcached_servers, "POOL_WAIT", 0.1)
    store = MemcachedStore(fresh_memcached.address, connect_timeout=0.1, timeout=0.1)
    key = store.generate_key()
    assert store.create(key, b"", time.time() + 600) == key
    fresh_memcached.stop()
    with pytest.raises(StoreUnavailable):
        store.load(key)  # the store meets the failure
    fresh_memcached.start()
    try:
        with pytest.raises(Interrupt), interrupted_on(_asking_taken):
            store.load(key)
        began = time.monotonic()
        while True:
            try:
                record = store.load(key)
                break
            except StoreUnavailable as exc:
                assert time.monotonic() - began < 3, f"still barred: {exc}"
                time.sleep(0.05)
        assert record is None  # a new memcached: the session is gone
        assert time.monotonic() - began >= 0.1 + 3 * 0.2 - 0.05  # not before
        assert not store._servers[0].down
        assert "turn to ask it lasted past 0.7 s: taken over" in caplog.text
    finally:
        store.close()


def test_a_command_waiting_for_a_connection_takes_the_slot_a_dropped_one_freed(
    clean_memcached: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All connections in use, a command waits for one. A client dropped by
    an interrupt frees its slot from its finalizer, which may not wait for
    the pool's lock (it can run in a thread that holds it) and so wakes no
    one when the lock is taken: the waiting command then waited for the
    next give-back, up to ``POOL_WAIT`` (3 s here, 10 by default), though a
    slot was free. It now takes that slot within a few ``LOST_RECHECK``."""
    monkeypatch.setattr(memcached_servers, "MAX_CONNECTIONS", 1)
    monkeypatch.setattr(memcached_servers, "POOL_WAIT", 3.0)
    store = MemcachedStore(clean_memcached.address)
    try:
        key = store.generate_key()
        assert store.create(key, b"", time.time() + 600) == key
        (server,) = store._servers
        client = server._free.pop()  # the only one: in use, as if by a command
        loaded: list[object] = []
        waiter = threading.Thread(target=lambda: loaded.append(store.load(key)))
        waiter.start()
        while not server._waiting:  # counted with the lock held, which the
            time.sleep(0.005)  # waiter lets go of only as it starts to wait
        with server._slots.lock:  # another command's, as the client is dropped
            del client  # its finalizer frees the slot, waking no one
        start = time.monotonic()
        waiter.join(5)
        waited = time.monotonic() - start
        assert loaded and loaded[0] is not None
        assert waited < 5 * LOST_RECHECK, f"woken after {waited:.2f} s"
    finally:
        store.close()
