"""One dead node of a 3-master Redis Cluster or a 3-server memcached pool.

Through the middleware, with and without ``lock = true``: every session
whose record lives on a healthy node loads, saves and locks as usual; the
sessions of the dead node raise ``StoreUnavailable`` and are never moved to
another node; new visitors get sessions on the live nodes (memcached); all
of it before and after the dead node's return, and (Redis) after a restart
of the whole cluster with empty script caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import redis
import webtest
from failover_traffic import counter
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from servers import MemcachedPool, RedisCluster, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow

PREFIX = "wsgisession:"
SESSIONS = 30


class Visitors:
    """Browsers of one app: each visit is a fresh client carrying one cookie."""

    def __init__(self, store: Store, lock: bool) -> None:
        self.app = SessionMiddleware(counter, store=store, lock=lock)

    def arrive(self) -> str:
        """A new visitor's first visit; its session key."""
        client = webtest.TestApp(self.app)
        assert client.get("/").text == "1"
        return str(client.cookies["sessionid"])

    def visit(self, key: str, path: str = "/") -> int:
        """The count the session of ``key`` shows after a visit to ``path``."""
        client = webtest.TestApp(self.app)
        client.set_cookie("sessionid", key)
        return int(client.get(path).text)


def name_of(key: str) -> str:
    return PREFIX + storage_key(key)


def expect_unavailable(visitors: Visitors, keys: list[str]) -> None:
    for key in keys:
        for path in ("/peek", "/"):
            with pytest.raises(StoreUnavailable):
                visitors.visit(key, path)


# -- Redis Cluster ---------------------------------------------------------------


def assert_every_key_on_its_node(cluster: RedisCluster) -> None:
    """No key lives on a node that does not serve its slot."""
    for node in cluster.nodes:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            names = [name.decode() for name in client.keys("*")]
        finally:
            client.close()
        assert all(cluster.node_of(name) is node for name in names), node


def flush_scripts(cluster: RedisCluster) -> None:
    for node in cluster.nodes:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            client.script_flush()
        finally:
            client.close()


@pytest.fixture
def cluster_store(fresh_redis_cluster: RedisCluster) -> Iterator[RedisStore]:
    store = RedisStore(fresh_redis_cluster.url)
    yield store
    store.close()


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock", "lock"])
def test_redis_cluster_serves_the_healthy_masters(
    fresh_redis_cluster: RedisCluster, cluster_store: RedisStore, lock: bool
) -> None:
    cluster, visitors = fresh_redis_cluster, Visitors(cluster_store, lock)
    keys = [visitors.arrive() for _ in range(SESSIONS)]
    home = {key: cluster.node_of(name_of(key)) for key in keys}
    victim = cluster.nodes[1]
    healthy = [key for key in keys if home[key] is not victim]
    lost = [key for key in keys if home[key] is victim]
    assert healthy and lost

    flush_scripts(cluster)  # as on a new cluster: nothing cached anywhere
    victim.stop(crash=True)
    assert [visitors.visit(key) for key in healthy] == [2] * len(healthy)
    expect_unavailable(visitors, lost)

    victim.start()
    cluster.wait_until_ok()
    counts = [visitors.visit(key) for key in keys]
    assert counts == [3 if key in healthy else 2 for key in keys]
    assert_every_key_on_its_node(cluster)

    cluster.restart()  # every script cache empty again, the data kept
    victim.stop(crash=True)
    assert [visitors.visit(key) for key in healthy] == [4] * len(healthy)
    expect_unavailable(visitors, lost)
    victim.start()
    cluster.wait_until_ok()
    assert [visitors.visit(key, "/peek") for key in lost] == [2] * len(lost)
    assert_every_key_on_its_node(cluster)


def test_a_lock_lives_in_its_records_slot(
    fresh_redis_cluster: RedisCluster, cluster_store: RedisStore
) -> None:
    """Seen from the server: the lock key a holder creates is on the record's node."""
    cluster, visitors = fresh_redis_cluster, Visitors(cluster_store, lock=True)
    for key in [visitors.arrive() for _ in range(10)]:
        with cluster_store.lock(key, 1.0, 60.0):
            node = cluster.node_of(name_of(key))
            client = redis.Redis(host=node.host, port=node.port)
            try:
                held = [n.decode() for n in client.keys("*:lock")]
            finally:
                client.close()
            assert held == [PREFIX + "{" + name_of(key) + "}:lock"]


# -- memcached pool --------------------------------------------------------------


def server_of(key: str, among: list[ServerProcess]) -> int | None:
    """The port of the one server of ``among`` holding ``key``'s record, asked
    over new connections (a restarted server closed the old ones)."""
    held = []
    for server in among:
        client = Client((server.host, server.port), timeout=2)
        try:
            if client.get(name_of(key)) is not None:
                held.append(server.port)
        finally:
            client.close()
    assert len(held) <= 1, held
    return held[0] if held else None


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock", "lock"])
def test_memcached_pool_serves_the_live_servers(
    fresh_memcached_pool: MemcachedPool, lock: bool
) -> None:
    pool, store = fresh_memcached_pool, MemcachedStore(fresh_memcached_pool.spec)
    visitors = Visitors(store, lock)
    keys = [visitors.arrive() for _ in range(SESSIONS)]
    home = {key: server_of(key, pool.servers) for key in keys}
    victim, live = pool.servers[0], pool.servers[1:]
    healthy = [key for key in keys if home[key] != victim.port]
    lost = [key for key in keys if home[key] == victim.port]
    assert healthy and lost and None not in home.values()

    victim.stop(crash=True)
    assert [visitors.visit(key) for key in healthy] == [2] * len(healthy)
    expect_unavailable(visitors, lost)
    assert all(server_of(key, live) is None for key in lost)  # not moved
    newcomers = [visitors.arrive() for _ in range(20)]  # none lands on the dead one
    assert all(server_of(key, live) is not None for key in newcomers)

    victim.start()  # back, empty: its sessions are gone, the app is not restarted
    assert [visitors.visit(key) for key in healthy] == [3] * len(healthy)
    assert [visitors.visit(key, "/peek") for key in lost] == [0] * len(lost)
    assert [visitors.visit(key) for key in newcomers] == [2] * len(newcomers)
    later = [visitors.arrive() for _ in range(10)]
    assert all(server_of(key, pool.servers) is not None for key in later)
    assert [visitors.visit(key) for key in later] == [2] * len(later)
    store.close()


def test_memcached_pool_with_every_server_down_is_unavailable(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    """New sessions look for a live server, but never pretend one exists."""
    store = MemcachedStore(fresh_memcached_pool.spec)
    visitors = Visitors(store, lock=False)
    fresh_memcached_pool.stop()
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            visitors.arrive()
    fresh_memcached_pool.start()
    assert visitors.visit(visitors.arrive()) == 2
    store.close()


def test_a_streamed_new_session_is_never_saved_under_a_key_its_client_lacks(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    """A streamed body sends a new session's cookie before the session is
    stored; if that key's server dies meanwhile, the save must fail loudly,
    not store the session under another key the client never receives."""
    pool, store = fresh_memcached_pool, MemcachedStore(fresh_memcached_pool.spec)

    def stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        session = environ["wsgisession"]
        session["cart"] = ["book"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"headers out, "  # the cookie (its key reserved) went with them
        # session_key stays None until the save: the key is the cookie's.
        (cookie,) = [v for _, v in headers if v.startswith("sessionid=")]
        port = server_of_name(store, cookie.split(";", 1)[0].partition("=")[2])
        next(server for server in pool.servers if server.port == port).stop(crash=True)
        yield b"its server gone"

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    headers: list[tuple[str, str]] = []

    def start_response(status: str, sent: list[Any], exc_info: Any = None) -> Any:
        headers.extend(sent)
        return lambda data: None  # write(), as PEP 3333 asks

    body = SessionMiddleware(stream, store=store)(environ, start_response)
    with pytest.raises(StoreUnavailable, match="cookie already carries"):
        try:
            assert b"".join(body) == b"headers out, its server gone"
        finally:
            body.close()  # type: ignore[attr-defined]
    assert [name for name, value in headers if value.startswith("sessionid=")] == [
        "Set-Cookie"
    ]
    live = [server for server in pool.servers if server.proc is not None]
    assert [stored_names(server) for server in live] == [[]] * len(live)
    store.close()


def server_of_name(store: MemcachedStore, session_key: str) -> int:
    """The port of the server a session's record maps to."""
    node = store._server_for(store._name(session_key)).node
    return int(node.rpartition(":")[2])


def stored_names(server: ServerProcess) -> list[str]:
    """The keys the server holds (memcached's lru_crawler dump)."""
    client = Client((server.host, server.port), timeout=5)
    try:
        dump = client.raw_command(b"lru_crawler metadump all", b"END\r\n")
    finally:
        client.close()
    return [line.split()[0] for line in dump.decode().splitlines() if line.strip()]
