"""The request lock of the memcached and Redis stores when the reply to the
command that took it never arrives, though the server ran the command.

memcached: a pooled connection that fails on its first command is taken for
one the server closed while idle, and the command runs once more on a new
connection. A lock's ``add`` that had been stored then finds its own item:
the request waited ``lock_timeout`` for its own lock, got ``LockTimeout``,
and left the session locked for ``lock_ttl`` (every request of the user
then waiting and failing in turn), as ``SQLStore`` did before it learned to
know its own lock row (``test_lock_faults``).

Redis runs no command twice: the request gets ``StoreUnavailable``, but the
key its ``SET NX`` wrote stayed, and locked the session for ``lock_ttl``.

The tests run through a TCP proxy in front of the real server that, once
armed, passes the lock's command on, waits for the server's reply and
closes the client's connection instead of passing the reply on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from reply_dropping_proxy import ReplyDroppingProxy
from servers import ServerProcess

from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import Store


def _lock_outcome(store: Store, key: str) -> str:
    started = time.monotonic()
    try:
        with store.lock(key, 1.0, 60.0):
            return "taken"
    except LockTimeout:
        return f"waited {time.monotonic() - started:.1f} s for its own lock"
    except StoreUnavailable:
        return "unavailable"


def _next_request_locks(store: Store, key: str) -> None:
    """The session is not left locked for lock_ttl (60 s)."""
    with store.lock(key, 0.5, 60.0):
        pass


@pytest.fixture
def memcached_proxy(memcached_server: ServerProcess) -> Iterator[ReplyDroppingProxy]:
    target = (memcached_server.host, memcached_server.port)
    proxy = ReplyDroppingProxy(target, (b"add ", b":lock "))
    yield proxy
    proxy.close()


def test_a_memcached_lock_added_twice_is_still_ours(
    memcached_proxy: ReplyDroppingProxy,
) -> None:
    store = MemcachedStore(f"127.0.0.1:{memcached_proxy.port}", timeout=1.0)
    try:
        key = generate_key()
        store.load(key)  # a pooled connection: the lock's add reuses it
        memcached_proxy.armed.set()
        outcome = _lock_outcome(store, key)
        assert memcached_proxy.dropped.is_set(), "the proxy never cut the connection"
        assert outcome == "taken"
        _next_request_locks(store, key)
    finally:
        store.close()


@pytest.fixture
def redis_proxy(fresh_redis: ServerProcess) -> Iterator[ReplyDroppingProxy]:
    target = (fresh_redis.host, fresh_redis.port)
    proxy = ReplyDroppingProxy(target, (b"SET\r\n", b":lock\r\n", b"NX\r\n"))
    yield proxy
    proxy.close()


def test_a_redis_lock_whose_reply_was_lost_is_not_left_held(
    redis_proxy: ReplyDroppingProxy,
) -> None:
    store = RedisStore(f"redis://127.0.0.1:{redis_proxy.port}/0", socket_timeout=1.0)
    try:
        key = generate_key()
        store.load(key)
        redis_proxy.armed.set()
        outcome = _lock_outcome(store, key)
        assert redis_proxy.dropped.is_set(), "the proxy never cut the connection"
        assert outcome in ("taken", "unavailable")  # never run twice
        _next_request_locks(store, key)
    finally:
        store.close()


def test_a_redis_lock_whose_release_failed_twice_is_still_released(
    fresh_redis: ServerProcess,
) -> None:
    """A lock's release never reaches the server; so does the release of it
    that the session's next taking sends (the store keeps its token for
    that): the taking after must still release it, not wait ``lock_ttl``."""
    target = (fresh_redis.host, fresh_redis.port)
    proxy = ReplyDroppingProxy(target, (b"EVAL",), request_too=True)
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=1.0)
    try:
        key = generate_key()
        proxy.armed.set()  # the first release
        with store.lock(key, 1.0, 60.0):
            pass
        assert proxy.dropped.is_set(), "the proxy never cut the connection"
        proxy.dropped.clear()
        proxy.armed.set()  # the release the next taking sends first
        with pytest.raises(StoreUnavailable):
            _next_request_locks(store, key)
        assert proxy.dropped.is_set()
        _next_request_locks(store, key)  # LockTimeout before: the token was lost
    finally:
        store.close()
        proxy.close()
