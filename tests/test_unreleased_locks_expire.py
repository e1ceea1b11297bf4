"""The Redis and memcached stores' tokens of request locks they could not
release, once those locks have expired by themselves.

A review drove a worker through the days of a long life: each release
that failed (a server stalled, restarted, failed over) left its lock's
token in the store's table for good, also those of sessions that never
came back, whose locks had long expired. Once 10,000 were there, no
failed release was kept any more, and each locked its session for
``lock_ttl``. The tokens now go as their locks expire, and a full table
makes room by dropping the expired ones.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from helpers import FakeClock
from servers import ServerProcess
from test_memcached_stalls import stop

import wsgisession.stores._keptlocks as keptlocks
from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores._redis_names import slot_mate
from wsgisession.stores._shared import LOCK_SUFFIX

pytestmark = pytest.mark.slow

TTL = 60.0
TIMEOUT = 0.3  # the stores' reply timeouts (s)


@pytest.fixture
def one_lock_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stores' tables of unreleased locks hold one lock."""
    monkeypatch.setattr(keptlocks, "UNRELEASED_KEPT", 1)
    for module in ("redis", "_memcached_lock"):  # where the tables were
        monkeypatch.setattr(
            f"wsgisession.stores.{module}._UNRELEASED_KEPT", 1, raising=False
        )


def release_failing_on_restart(
    store: RedisStore, server: ServerProcess, key: str
) -> None:
    """Hold ``key``'s lock while the server dies; start it again after."""
    with store.lock(key, 1.0, TTL):
        server.stop(crash=True)
    server.start()


def release_failing_on_stall(
    store: MemcachedStore, server: ServerProcess, key: str
) -> None:
    """Hold ``key``'s lock; the server stalls as its release begins."""
    process: Any = server.proc
    try:
        with store.lock(key, 1.0, TTL):
            stop(server)
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.mark.usefixtures("one_lock_kept")
def test_redis_keeps_a_new_unreleased_lock_once_the_old_ones_expired(
    fresh_redis: ServerProcess, frozen_clock: FakeClock
) -> None:
    store = RedisStore(fresh_redis.url, socket_timeout=TIMEOUT)
    first, second = generate_key(), generate_key()

    def lock_name(key: str) -> str:
        return slot_mate(store._name(key), LOCK_SUFFIX, store._key_prefix)

    try:
        release_failing_on_restart(store, fresh_redis, first)
        assert lock_name(first) in store._unreleased
        frozen_clock.advance(TTL + 1)  # the first lock has expired by itself
        release_failing_on_restart(store, fresh_redis, second)
        assert lock_name(second) in store._unreleased  # not kept before: full
        assert lock_name(first) not in store._unreleased
    finally:
        store.close()


@pytest.mark.usefixtures("one_lock_kept")
def test_memcached_takes_over_a_new_unreleased_lock_once_the_old_ones_expired(
    fresh_memcached: ServerProcess, frozen_clock: FakeClock
) -> None:
    """The server stalls as each lock's release begins; the lock item stays.
    The second lock, released after the first had expired, is taken over
    at once (LockTimeout before: the table was full of the first)."""
    store = MemcachedStore(
        [fresh_memcached.address], connect_timeout=TIMEOUT, timeout=TIMEOUT
    )
    first, second = generate_key(), generate_key()
    try:
        release_failing_on_stall(store, fresh_memcached, first)
        frozen_clock.advance(TTL + 1)  # the first lock has expired by itself
        release_failing_on_stall(store, fresh_memcached, second)
        with store.lock(second, 0.5, TTL):  # held for TTL more: taken over
            pass
    except (LockTimeout, StoreUnavailable) as exc:
        pytest.fail(f"the second lock was not taken over: {exc!r}")
    finally:
        store.close()
