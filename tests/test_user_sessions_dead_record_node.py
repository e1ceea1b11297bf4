"""A user with a session on a dead node signs in on the nodes that are up.

In a Redis Cluster or a memcached pool a user's index lives on one node and
each of their sessions' records on the node of its key. A login prunes the
index first, reading every listed record: one of them on a dead node must
not refuse the login, whose index and new record live on nodes that are
up. (A request of the session on the dead node still fails, as does a
listing of the user, which cannot tell whether that session lives.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from servers import MemcachedPool, RedisCluster, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key, user_storage_key
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow

PREFIX = "wsgisession:"


def bound(middleware: SessionMiddleware, user: str) -> Session:
    session = middleware.open_session()
    session["device"] = "laptop"
    session.bind_user(user)
    return session


def record_on_victim(
    middleware: SessionMiddleware, user: str, is_victim: Callable[[str], bool]
) -> Session:
    """A session of ``user`` whose record lives on the victim (others revoked)."""
    while True:
        session = bound(middleware, user)
        if is_victim(PREFIX + storage_key(session.session_key or "")):
            return session
        assert middleware.revoke_user_session(user, session.handle or "")


def sign_in(middleware: SessionMiddleware, user: str) -> Session:
    """A new device's login. On Redis a new key may hash to the dead node
    (1 in 3: StoreUnavailable, as for any new visitor's); on memcached new
    keys avoid it. Ten tries all failing that way: 1 in 59,000."""
    for _ in range(9):
        try:
            return bound(middleware, user)
        except StoreUnavailable:
            pass
    return bound(middleware, user)


def sign_in_beside_a_dead_record(
    store: Store,
    victim: ServerProcess,
    is_victim: Callable[[str], bool],
    index_name: Callable[[str], str],
) -> None:
    user = next(
        f"user{i}" for i in range(1000) if not is_victim(index_name(f"user{i}"))
    )
    with SessionMiddleware(lambda e, s: [], store) as middleware:
        away = record_on_victim(middleware, user, is_victim)
        victim.stop(crash=True)
        session = sign_in(middleware, user)
        assert session.user_id == user
        assert not is_victim(PREFIX + storage_key(session.session_key or ""))
        again = middleware.open_session(session.session_key)
        assert again.get("device") == "laptop" and again.user_id == user
        with pytest.raises(StoreUnavailable):  # that session's fate is unknown
            middleware.user_sessions(user)
        victim.start()
        wait = getattr(victim, "wait_for_cluster", None)
        if wait is not None:
            wait()
        listed = {s.handle for s in middleware.user_sessions(user)}
        assert session.handle in listed
        if isinstance(store, RedisStore):  # memcached came back empty
            assert away.handle in listed


def test_redis_cluster_signs_in_beside_a_dead_record(
    fresh_redis_cluster: RedisCluster,
) -> None:
    cluster = fresh_redis_cluster
    victim = cluster.nodes[1]
    victim.wait_for_cluster = cluster.wait_until_ok  # type: ignore[attr-defined]
    sign_in_beside_a_dead_record(
        RedisStore(cluster.url, socket_timeout=1.0),
        victim,
        lambda name: cluster.node_of(name) is victim,
        lambda user: PREFIX + "user:" + user_storage_key(user),
    )


def test_memcached_pool_signs_in_beside_a_dead_record(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    pool = fresh_memcached_pool
    store = MemcachedStore(pool.spec)
    victim = pool.servers[1]
    sign_in_beside_a_dead_record(
        store,
        victim,
        lambda name: store._server_for(name).spec == victim.address,
        lambda user: PREFIX + user_storage_key(user) + ":user",
    )
