"""``disconnect()`` on the pool of a client RedisStore made, while commands
are in flight on its connections.

redis-py's ``disconnect()`` closes every connection of the pool, those in
use under their commands too; redis-py 6.0 to 7.1's ``RedisCluster`` calls
it on each node it asks at every refresh of its map (every node error),
and a healthy master's command then raised ValueError ("I/O operation on
closed file") or AttributeError out of the store. The store's pool lets a
command in flight end and closes its connection as it comes back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from failover_traffic import load_errors_while
from servers import ServerProcess

from wsgisession.keys import generate_key
from wsgisession.stores.redis import RedisStore


@pytest.fixture
def store(clean_redis: ServerProcess) -> Iterator[RedisStore]:
    store = RedisStore(clean_redis.url)
    yield store
    store.close()


def test_disconnect_lets_a_command_in_flight_read_its_reply(store: RedisStore) -> None:
    pool = store._client.connection_pool
    connection = pool.get_connection()
    connection.send_command("ECHO", "in flight")
    pool.disconnect()
    try:
        assert connection.read_response() == b"in flight"
    finally:
        pool.release(connection)
    assert connection._sock is None  # closed as it came back, not kept


def test_disconnect_closes_the_idle_connections(store: RedisStore) -> None:
    key = generate_key()
    assert store.create(key, b"x", time.time() + 600) == key
    pool = store._client.connection_pool
    assert any(c._sock is not None for c in pool._connections)
    pool.disconnect()
    assert all(c._sock is None for c in pool._connections)
    assert store.load(key) is not None  # and connects again when next used


@pytest.mark.slow
def test_loads_see_no_error_while_the_pool_is_disconnected_again_and_again(
    store: RedisStore,
) -> None:
    """What redis-py 6's cluster client does to each node's pool at every
    map refresh, here to a single server's pool for half a second."""
    keys = [generate_key() for _ in range(10)]
    for key in keys:
        assert store.create(key, b"x" * 100, time.time() + 600) == key
    errors = load_errors_while(
        store, keys, store._client.connection_pool.disconnect, 0.5
    )
    assert errors == [], sorted({type(e).__name__ for e in errors})
