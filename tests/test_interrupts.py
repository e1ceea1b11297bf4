"""Exceptions that arrive in the middle of a store's command: a signal
handler's ``KeyboardInterrupt`` or ``SystemExit``, ``gevent.Timeout`` or
``eventlet.Timeout`` around a request, an exception a server sends an
overrunning request's thread with ``PyThreadState_SetAsyncExc``.

Python delivers them as a function is entered (among other points), so
:func:`interrupting.interrupted_at` raises one as the named function is
called (see interrupting.py).
"""

from __future__ import annotations

import time

import pytest
import redis.client
import redis.connection
from interrupting import Interrupt, interrupted_at
from pymemcache.client import base as pymemcache_base  # type: ignore[import-untyped]
from servers import ServerProcess

from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores._redis_clients import POOL_SIZE
from wsgisession.stores.base import Store


def two_sessions(store: Store) -> tuple[str, str]:
    first, second = store.generate_key(), store.generate_key()
    for key, payload in ((first, b"first's data"), (second, b"second's data")):
        assert store.create(key, payload, time.time() + 600) == key
    return first, second


def test_an_interrupted_redis_load_never_hands_its_reply_to_the_next(
    clean_redis: ServerProcess,
) -> None:
    """Interrupted after its GET went out, before the reply was read, the
    connection went back to the pool with the reply on its way, and the
    next command on it read that reply: the next request's session was
    loaded with the interrupted request's data (its user's, too)."""
    with RedisStore(clean_redis.url) as store:
        first, second = two_sessions(store)
        with (
            pytest.raises(Interrupt),
            interrupted_at(redis.client.Redis.parse_response),
        ):
            store.load(first)
        record = store.load(second)
        assert record is not None
        assert record.payload == b"second's data"


def test_interrupts_between_redis_steps_leave_the_pool_its_connections(
    clean_redis: ServerProcess,
) -> None:
    """Interrupted after taking a connection from the pool, before redis-py's
    ``try`` that gives it back (here: as the pool hands it over), a command
    never gave it back: each such interrupt cost the pool one of its
    connections for good, and once all were gone every request waited 10 s
    and failed with StoreUnavailable."""
    with RedisStore(clean_redis.url) as store:
        first, _ = two_sessions(store)
        pool = store._client.connection_pool
        for _ in range(3):
            taken = interrupted_at(type(pool).get_connection, returning=True)
            with pytest.raises(Interrupt), taken:
                store.load(first)
        assert pool.pool.qsize() == POOL_SIZE
        assert store.load(first) is not None


#: Where each store's lock is cut short: as the reply to the command that
#: took it has just been read (the lock is held, the store does not know it
#: yet), and as the command that releases it is about to be sent. (Cut
#: short before the take's reply is read, the store's release goes out on
#: another connection, which the server may serve first: not tested here.)
INTERRUPTS = {
    "redis": {
        "take": (redis.client.Redis.parse_response, 1, True),
        "release": (redis.connection.AbstractConnection.send_command, 2, False),
    },
    "memcached": {
        "take": (pymemcache_base._readline, 1, True),
        "release": (pymemcache_base.Client.gets, 1, False),
    },
}


def networked_store(kind: str, request: pytest.FixtureRequest) -> Store:
    server = request.getfixturevalue(f"clean_{kind}")
    if kind == "redis":
        return RedisStore(server.url)
    return MemcachedStore([server.address])


@pytest.mark.parametrize("step", ["take", "release"])
@pytest.mark.parametrize("kind", sorted(INTERRUPTS))
def test_a_lock_cut_short_by_an_interrupt_does_not_stay(
    kind: str, step: str, request: pytest.FixtureRequest
) -> None:
    """A request interrupted as it took its lock (the server had run the
    command) or as it released it left the
    session locked for ``lock_ttl``: every request of the user waited
    ``lock_timeout`` and failed with LockTimeout meanwhile."""
    with networked_store(kind, request) as store:
        first, _ = two_sessions(store)
        function, call, returning = INTERRUPTS[kind][step]
        with (
            pytest.raises(Interrupt),
            interrupted_at(function, call, returning=returning),
            store.lock(first, 1.0, 600.0),
        ):
            pass
    with (  # another process: LockTimeout if the lock stayed
        networked_store(kind, request) as other_process,
        other_process.lock(first, 0.2, 600.0),
    ):
        pass
