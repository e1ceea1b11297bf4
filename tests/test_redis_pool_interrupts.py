"""A RedisStore's connection pool under exceptions that arrive between its
steps: a signal handler's ``KeyboardInterrupt`` or a ``SIGALRM`` request
timeout, an exception sent with ``PyThreadState_SetAsyncExc``.

One that landed as the pool's queue handed a connection over (before the
thread's record of it was written) or took one back (after the record was
struck, before the connection was back in the queue) lost one of the
pool's :data:`POOL_SIZE` slots for the life of the process; once all were
lost, every command waited ``POOL_WAIT`` and failed.
:func:`interrupting.interrupted_on` raises one at each point of the
store's and the pool's code in turn, on a real redis-server.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import pytest
from interrupting import (
    STEPS,
    Interrupt,
    ends_within,
    in_module,
    interrupted_on,
    interrupted_twice,
)
from servers import ServerProcess

from wsgisession.stores import RedisStore
from wsgisession.stores import _redis_clients as redis_clients
from wsgisession.stores import _redis_pool as redis_pool
from wsgisession.stores import redis as redis_store

#: Every point where Python checks for a signal in the code a load and an
#: update run of ours (the store's, the pool's: the clients' module makes
#: the client only) and of the queue the pool's queue is built on (its
#: Condition's ``__enter__`` acquired the lock in Python code). An
#: interrupt in the pool's ``reclaim`` is a second one, landing as the
#: first unwinds: see the last test.
STORE_CODE = in_module(
    redis_store.__file__, redis_pool.__file__, queue.__file__, threading.__file__
)

SMALL_POOL = 2


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two connections per pool, waited for 0.2 s: a slot lost shows at once."""
    monkeypatch.setattr(redis_clients, "POOL_SIZE", SMALL_POOL)
    monkeypatch.setattr(redis_clients, "POOL_WAIT", 0.2)


def _interrupt_everywhere(
    server: ServerProcess, step: Callable[[RedisStore, str], object]
) -> Iterator[int]:
    """Run ``step`` interrupted at its ``nth`` point of the store's code,
    for each ``nth`` until one runs to its end: on a new store (its first
    connection is made), then again on it (an idle one is taken). Yield
    each ``nth`` after checking what its interrupts left behind."""
    with RedisStore(server.url) as writer:
        key = writer.generate_key()
        assert writer.create(key, b"", time.time() + 600) == key
    nth = 1
    while True:
        store = RedisStore(server.url)  # not closed on a failure: it may hang
        for _ in range(2):
            if not _interrupted(step, store, key, nth):
                store.close()
                return
            _assert_nothing_lost(store, key, nth)
        store.close()
        yield nth
        nth += 1


def _interrupted(
    step: Callable[[RedisStore, str], object], store: RedisStore, key: str, nth: int
) -> bool:
    """Run ``step`` interrupted at its ``nth`` point, in a thread (a pool's
    lock kept by the interrupt would hang it); whether it was interrupted."""
    fired: list[bool] = []

    def run() -> None:
        with interrupted_on(STORE_CODE, nth) as shot, contextlib.suppress(Interrupt):
            step(store, key)
        fired.append(shot.fired)

    ends_within(run, f"a command interrupted at point {nth}")
    return fired == [True]


def _assert_nothing_lost(store: RedisStore, key: str, nth: int) -> None:
    """All of the pool's connections can be held at once, and the store
    still answers (in a thread: a pool's lock kept by the interrupt would
    hang it). A connection dropped by the interrupt is freed first, as
    Python frees it once the exception is gone."""
    gc.collect()

    def use_every_slot() -> None:
        pool = store._client.connection_pool
        held = [pool.get_connection() for _ in range(SMALL_POOL)]
        for connection in held:
            pool.release(connection)
        assert store.load(key) is not None

    ends_within(use_every_slot, f"the pool after an interrupt at point {nth}")


@pytest.mark.slow
@pytest.mark.usefixtures("small_pool")
@pytest.mark.parametrize("name", sorted(STEPS))
def test_an_interrupt_anywhere_in_the_store_loses_no_connection(
    clean_redis: ServerProcess, name: str
) -> None:
    """Interrupted at any point of the store's and the pool's code, a
    command leaves every connection it took back in the pool (or its slot
    free again), and the pool's lock free: before, an interrupt as the
    queue handed a connection over or took it back lost a slot for good."""
    points = list(_interrupt_everywhere(clean_redis, STEPS[name]))
    assert len(points) > 10, points  # the sweep reached the pool's code


@pytest.mark.usefixtures("small_pool")
def test_connections_taken_as_an_interrupt_lands_come_back(
    clean_redis: ServerProcess,
) -> None:
    """Three commands, each interrupted in the pool's queue as it handed a
    connection over (its thread's record of it was being written), in a
    pool of two: the fourth is served at once, not after ``POOL_WAIT``
    with ``StoreUnavailable``."""
    with RedisStore(clean_redis.url) as store:
        key = store.generate_key()
        assert store.create(key, b"", time.time() + 600) == key
        for _ in range(3):
            with pytest.raises(Interrupt), interrupted_on(_handing_over):
                store.load(key)
        start = time.monotonic()
        assert store.load(key) is not None
        assert time.monotonic() - start < 0.1
        _assert_nothing_lost(store, key, 3)


def _handing_over(frame: FrameType, event: str, arg: object) -> bool:
    """A hit in the queue's ``_get`` once its thread is known (where the
    connection had already left the queue and was not yet in the record)."""
    return (
        event == "c_return"
        and frame.f_code is redis_pool._Slots._get.__code__
        and getattr(arg, "__name__", None) == "get_ident"
    )


def test_an_interrupt_as_the_pool_takes_its_lock_never_keeps_it(
    clean_redis: ServerProcess,
) -> None:
    """Interrupted just after ``Condition.__enter__`` acquired the queue's
    lock (Python code: a point for a signal before the ``with`` block
    began), a command left the lock held: its own reclaim then waited for
    it for good, and so did every later command of the process. The pool
    now enters its lock with ``with`` alone. Run in a thread, which must
    end, its store still answering."""

    def interrupted_load() -> None:
        with RedisStore(clean_redis.url) as store:
            key = store.generate_key()
            store.create(key, b"", time.time() + 600)
            with contextlib.suppress(Interrupt), interrupted_on(_lock_entered):
                store.load(key)
            assert store.load(key) is not None

    ends_within(interrupted_load, "a load interrupted as the pool took its lock")


def _lock_entered(frame: FrameType, event: str, arg: object) -> bool:
    """A hit for a lock just acquired by ``Condition.__enter__``."""
    return event == "c_return" and (
        frame.f_code is threading.Condition.__enter__.__code__
    )


#: Where a second interrupt may land as the first unwinds: the store's and
#: the pool's code, :func:`reclaim` included.
RECLAIM_CODE = in_module(redis_store.__file__, redis_pool.__file__)


@pytest.mark.usefixtures("small_pool")
def test_a_second_interrupt_as_the_first_unwinds_loses_no_connection(
    clean_redis: ServerProcess,
) -> None:
    """A load interrupted as the queue handed a connection over (in the
    thread's record of what it took), then again at each point of the code
    that puts that connection back (the store's ``reclaim`` call, the
    pool's): before, one landing as ``reclaim`` closed the connection or
    put it back lost its slot for good (15 of the sweep's 26 points), and
    a pool of two served nothing after two such losses."""
    with RedisStore(clean_redis.url) as writer:
        key = writer.generate_key()
        assert writer.create(key, b"", time.time() + 600) == key
    nth = 1
    while True:
        store = RedisStore(clean_redis.url)  # not closed on a failure: it may hang
        if not _interrupted_twice(store, key, nth):
            break
        _assert_nothing_lost(store, key, nth)
        store.close()
        nth += 1
    store.close()
    assert nth > 10, nth  # the sweep reached reclaim's code


def _interrupted_twice(store: RedisStore, key: str, nth: int) -> bool:
    """Load ``key`` interrupted as the queue hands its connection over, and
    again at the ``nth`` point after, in a thread (a pool's lock kept by an
    interrupt would hang it); whether the second interrupt was raised."""
    fired: list[bool] = []

    def run() -> None:
        with (
            interrupted_twice(redis_pool._Slots._get, RECLAIM_CODE, nth) as shot,
            contextlib.suppress(Interrupt),
        ):
            store.load(key)
        fired.append(shot.fired)

    ends_within(run, f"a load interrupted twice, the second at point {nth}")
    return fired == [True]
