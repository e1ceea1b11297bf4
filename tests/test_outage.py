"""Memcached and Redis going away and coming back, with real servers.

Each test gets its own server process (``fresh_*``) and stops it; the
store must fail fast with ``StoreUnavailable`` and work again, without
being rebuilt, once the server is back.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from servers import ServerProcess

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores.base import Store
from wsgisession.stores.memcached import MemcachedStore
from wsgisession.stores.redis import RedisStore

FAST = 3.0  # seconds: the most a failing operation may take

if TYPE_CHECKING:
    AnyStore = MemcachedStore | RedisStore


def later(seconds: float = 600) -> float:
    return time.time() + seconds


def make_store(kind: str, address: str, timeout: float = 2.0) -> AnyStore:
    if kind == "memcached":
        return MemcachedStore(address, connect_timeout=1.0, timeout=timeout)
    return RedisStore(f"redis://{address}/0", socket_timeout=timeout)


@pytest.fixture(params=["memcached", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str, request: pytest.FixtureRequest) -> ServerProcess:
    fixture = "fresh_memcached" if kind == "memcached" else "fresh_redis"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def assert_unavailable(
    operation: Callable[[], Any], store: Store, where: str
) -> StoreUnavailable:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        operation()
    assert time.monotonic() - started < FAST
    assert where in str(caught.value)
    assert caught.value.store == repr(store)
    assert caught.value.__cause__ is not None
    return caught.value


def every_operation(store: AnyStore, key: str) -> Iterator[Callable[[], Any]]:
    loaded = store.load(key)
    yield lambda: store.load(key)
    yield lambda: store.create(generate_key(), b"new", later())
    yield lambda: store.update(key, lambda current: (b"changed", later()), loaded)
    yield lambda: store.update(key, lambda current: (b"changed", later()), None)
    yield lambda: store.delete(key)
    yield lambda: store.exists(key)


def test_outage_fails_fast_and_recovers(kind: str, server: ServerProcess) -> None:
    store = make_store(kind, server.address)
    key = generate_key()
    assert store.create(key, b"before", later()) == key
    operations = list(every_operation(store, key))
    server.stop(crash=True)
    for operation in operations:
        assert_unavailable(operation, store, server.address)
    assert store.exists("not a key") is False  # bad input never reaches the server
    server.start()
    assert store.load(key) is None  # the server kept nothing: no persistence
    fresh = generate_key()
    assert store.create(fresh, b"after", later()) == fresh
    store.update(
        fresh, lambda current: ((current or b"") + b"!", later()), store.load(fresh)
    )
    record = store.load(fresh)
    assert record is not None and record.payload == b"after!"


def _busy(store: AnyStore, key: str) -> None:
    for _ in range(5):
        store.update(key, lambda current: ((current or b"") + b".", later()), None)


def test_idle_connections_survive_a_restart(kind: str, server: ServerProcess) -> None:
    store = make_store(kind, server.address)
    key = generate_key()
    store.create(key, b"", later())
    with ThreadPoolExecutor(max_workers=6) as pool:  # several pooled connections
        for future in [pool.submit(_busy, store, key) for _ in range(6)]:
            future.result()
    server.stop(crash=True)
    server.start()  # nothing used the store in between: its connections are stale
    fresh = generate_key()
    assert store.create(fresh, b"", later()) == fresh
    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(_busy, store, fresh) for _ in range(6)]:
            future.result()
    record = store.load(fresh)
    assert record is not None and record.payload == b"." * 30


def test_a_store_built_before_its_server_starts(
    kind: str, server: ServerProcess
) -> None:
    server.stop(crash=True)
    store = make_store(kind, server.address)
    assert_unavailable(lambda: store.load(generate_key()), store, server.address)
    server.start()
    key = generate_key()
    assert store.create(key, b"late", later()) == key


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_server_that_never_answers_times_out(kind: str, silent_port: int) -> None:
    address = f"127.0.0.1:{silent_port}"
    store = make_store(kind, address, timeout=0.05)
    started = time.monotonic()
    caught = assert_unavailable(lambda: store.load(generate_key()), store, address)
    assert time.monotonic() - started >= 0.04  # it did wait for the answer
    assert "Timeout" in type(caught.__cause__).__name__  # redis-py's has its own


def test_one_memcached_down_leaves_the_others_working(
    memcached_server: ServerProcess, fresh_memcached: ServerProcess
) -> None:
    store = MemcachedStore([memcached_server.address, fresh_memcached.address])
    keys = [generate_key() for _ in range(30)]
    for key in keys:
        store.create(key, b"x", later())
    fresh_memcached.stop(crash=True)
    alive, lost = 0, 0
    for key in keys:
        try:
            record = store.load(key)
        except StoreUnavailable as exc:
            assert fresh_memcached.address in str(exc)
            lost += 1
        else:  # never silently moved to the surviving server
            assert record is not None and record.payload == b"x"
            alive += 1
    assert alive > 0 and lost > 0


def test_lock_during_an_outage(
    kind: str, server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(kind, server.address)
    key = generate_key()
    with (
        caplog.at_level(logging.WARNING, logger="wsgisession"),
        store.lock(key, 1.0, 60.0),
    ):
        server.stop(crash=True)
    # The release failed: logged, not raised over the request's own outcome.
    assert [r for r in caplog.records if "could not release" in r.getMessage()]

    def take_lock() -> None:
        with store.lock(key, 1.0, 60.0):
            pass  # pragma: no cover - never reached

    assert_unavailable(take_lock, store, server.address)
    server.start()
    with store.lock(key, 0.5, 60.0):
        pass  # the restarted server has forgotten the old lock
