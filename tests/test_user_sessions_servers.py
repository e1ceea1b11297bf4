"""A user's sessions on the server stores: what Redis and memcached do apart.

The store-agnostic suite (tests/test_user_sessions.py) runs on them too;
here: the index as seen on the server, memcached failing closed when its
index item is evicted, entries of sessions being created surviving
concurrent listings, and one dead node of a cluster or pool affecting only
the users it holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import (
    build_store,
    evict_user_index,
    fake_clock,
    store_argument,
    user_app,
)
from servers import MemcachedPool, RedisCluster, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key, user_storage_key
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import PENDING_GRACE

USER, OTHER = "alice@example.org", "bob@example.org"
PREFIX = "wsgisession:"
REDIS_KINDS = ["redis", "redis-cluster"]
MEMCACHED_KINDS = ["memcached", "memcached-pool"]


def open_middleware(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionMiddleware]:
    argument = store_argument(request.param, request, tmp_path)
    with SessionMiddleware(user_app, build_store(request.param, argument)) as mw:
        yield mw


@pytest.fixture(params=REDIS_KINDS)
def on_redis(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionMiddleware]:
    yield from open_middleware(request, tmp_path)


@pytest.fixture(params=MEMCACHED_KINDS)
def on_memcached(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionMiddleware]:
    yield from open_middleware(request, tmp_path)


@pytest.fixture(params=REDIS_KINDS + MEMCACHED_KINDS)
def on_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionMiddleware]:
    yield from open_middleware(request, tmp_path)


def bound(middleware: SessionMiddleware, user: str = USER) -> Session:
    session = middleware.open_session()
    session["device"] = "laptop"
    session.bind_user(user)
    return session


def reopened(middleware: SessionMiddleware, session: Session) -> Session:
    """The session as its next request loads it."""
    again = middleware.open_session(session.session_key)
    again.get("device")  # loads
    return again


def handles(middleware: SessionMiddleware, user: str = USER) -> set[str]:
    return {s.handle for s in middleware.user_sessions(user)}


def redis_keys(store: RedisStore) -> list[bytes]:
    """Every key on the Redis server (every primary of a cluster)."""
    if store._is_cluster():
        return list(store._call("keys", "*", target_nodes="primaries"))
    return list(store._call("keys", "*"))


# -- Redis: the index on the server --------------------------------------------------


def test_redis_index_is_a_set_of_record_names_under_a_hash(
    on_redis: SessionMiddleware,
) -> None:
    sessions = [bound(on_redis) for _ in range(2)]
    store = on_redis.store
    assert isinstance(store, RedisStore)
    index_name = PREFIX + "user:" + user_storage_key(USER)
    names = redis_keys(store)
    members = store._call("zrange", index_name, 0, -1, withscores=True)
    expected = {storage_key(s.session_key or "").encode() for s in sessions}
    assert {member for member, _ in members} == expected
    assert {score for _, score in members} == {0.0}  # both records created
    assert all(USER.encode() not in name for name in names)
    assert all(
        (s.session_key or "").encode() not in name for s in sessions for name in names
    )


def test_redis_prunes_an_entry_without_record_only_after_the_grace(
    on_redis: SessionMiddleware,
) -> None:
    """An entry whose record is not there yet (a login in progress) survives
    listings for PENDING_GRACE seconds; one whose record was created and is
    gone is pruned at once."""
    store = on_redis.store
    assert isinstance(store, RedisStore)
    index_name = PREFIX + "user:" + user_storage_key(USER)
    pending, created = storage_key("pending-login"), storage_key("revoked-login")
    with fake_clock() as clock:
        store._call("zadd", index_name, {pending: int(clock() * 1000), created: 0})
        assert on_redis.user_sessions(USER) == []
        members = store._call("zrange", index_name, 0, -1)
        assert members == [pending.encode()]
        clock.advance(PENDING_GRACE + 1)
        assert on_redis.user_sessions(USER) == []
        assert store._call("exists", index_name) == 0


# -- memcached: the index item, and failing closed -------------------------------------


def test_memcached_an_evicted_index_fails_closed(
    on_memcached: SessionMiddleware,
) -> None:
    store = on_memcached.store
    assert isinstance(store, MemcachedStore)
    mine = [bound(on_memcached) for _ in range(2)]
    theirs = bound(on_memcached, OTHER)
    evict_user_index(store, USER)

    for session in mine:
        again = reopened(on_memcached, session)
        assert again.user_id is None and again.get("device") is None
    assert on_memcached.user_sessions(USER) == []
    still = reopened(on_memcached, theirs)
    assert still.user_id == OTHER and still["device"] == "laptop"
    assert handles(on_memcached, OTHER) == {theirs.handle}


def test_memcached_an_index_that_lost_one_entry_revokes_only_that_session(
    on_memcached: SessionMiddleware,
) -> None:
    store = on_memcached.store
    assert isinstance(store, MemcachedStore)
    kept, lost = bound(on_memcached), bound(on_memcached)
    lost_name = storage_key(lost.session_key or "")

    def forget(entries: dict[str, int]) -> bool:
        del entries[lost_name]
        return True

    store._users._change(USER, forget)
    assert reopened(on_memcached, lost).user_id is None
    assert reopened(on_memcached, kept).user_id == USER
    assert handles(on_memcached) == {kept.handle}


def test_memcached_bound_load_reads_the_index_once(
    on_memcached: SessionMiddleware,
) -> None:
    """The one extra round trip of a bound session, and none for an unbound one."""
    store = on_memcached.store
    assert isinstance(store, MemcachedStore)
    calls: list[str] = []
    original = store._call

    def counting(command: str, name: str, *args: object) -> object:
        calls.append(command + (" index" if name.endswith(":user") else ""))
        return original(command, name, *args)

    session, plain = bound(on_memcached), on_memcached.open_session()
    plain["device"] = "phone"
    plain.save()
    store._call = counting  # type: ignore[method-assign]
    try:
        reopened(on_memcached, session)
        assert calls == ["gets", "get index"]
        calls.clear()
        reopened(on_memcached, plain)
        assert calls == ["gets"]
    finally:
        del store._call


# -- concurrency -------------------------------------------------------------------


def test_logins_racing_listings_lose_no_entry(on_server: SessionMiddleware) -> None:
    """Threads bind sessions of one user while another lists (and so prunes)
    the user's index all along: every session is listed at the end."""
    done = threading.Event()

    def log_in(count: int) -> list[str]:
        return [bound(on_server).handle or "" for _ in range(count)]

    def list_all_along() -> None:
        while not done.is_set():
            on_server.user_sessions(USER)

    with ThreadPoolExecutor(5) as pool:
        lister = pool.submit(list_all_along)
        logins = [pool.submit(log_in, 8) for _ in range(4)]
        try:
            made = [handle for login in logins for handle in login.result()]
        finally:
            done.set()
        lister.result()
    assert len(made) == 32
    assert handles(on_server) == set(made)
    assert on_server.revoke_user_sessions(USER) == 32


# -- one dead node ------------------------------------------------------------------


def bound_away_from(
    middleware: SessionMiddleware, user: str, is_victim, count: int = 3
) -> list[Session]:
    """``count`` sessions of ``user`` whose records avoid the victim node
    (the others are revoked while it is up)."""
    kept: list[Session] = []
    while len(kept) < count:
        session = bound(middleware, user)
        if is_victim(PREFIX + storage_key(session.session_key or "")):
            assert middleware.revoke_user_session(user, session.handle or "")
        else:
            kept.append(session)
    return kept


def users_by_index_node(is_victim, index_name) -> tuple[str, str]:
    """A user whose index is on the victim node, and one whose index is not."""
    on_victim = next(
        f"user{i}" for i in range(1000) if is_victim(index_name(f"user{i}"))
    )
    elsewhere = next(
        f"user{i}" for i in range(1000) if not is_victim(index_name(f"user{i}"))
    )
    return on_victim, elsewhere


def kill_with_users(
    middleware: SessionMiddleware, victim: ServerProcess, is_victim, index_name
) -> tuple[str, list[Session]]:
    """Bind sessions of two users, all records away from the victim: one
    user's index on it, the other's elsewhere. Kill the victim, check that
    the second user is unaffected (listing, requests, revocation), and
    return the first user and their sessions."""
    lost_user, safe_user = users_by_index_node(is_victim, index_name)
    lost = bound_away_from(middleware, lost_user, is_victim)
    safe = bound_away_from(middleware, safe_user, is_victim)
    victim.stop(crash=True)
    assert handles(middleware, safe_user) == {s.handle for s in safe}
    assert reopened(middleware, safe[0]).user_id == safe_user
    assert middleware.revoke_user_session(safe_user, safe[0].handle or "")
    assert reopened(middleware, safe[0]).user_id is None
    return lost_user, lost


@pytest.mark.slow
def test_redis_cluster_dead_node_affects_only_its_users(
    fresh_redis_cluster: RedisCluster,
) -> None:
    cluster = fresh_redis_cluster
    victim = cluster.nodes[1]

    def is_victim(name: str) -> bool:
        return cluster.node_of(name) is victim

    def index_name(user: str) -> str:
        return PREFIX + "user:" + user_storage_key(user)

    with SessionMiddleware(user_app, RedisStore(cluster.url)) as middleware:
        lost_user, lost = kill_with_users(middleware, victim, is_victim, index_name)
        # The other: requests still work (no index read on Redis), but
        # listing, revoking and logging in need the dead node.
        assert reopened(middleware, lost[0]).user_id == lost_user
        with pytest.raises(StoreUnavailable):
            middleware.user_sessions(lost_user)
        with pytest.raises(StoreUnavailable):
            middleware.revoke_user_sessions(lost_user)
        with pytest.raises(StoreUnavailable):
            bound(middleware, lost_user)

        victim.start()
        cluster.wait_until_ok()
        assert handles(middleware, lost_user) == {s.handle for s in lost}
        assert middleware.revoke_user_sessions(lost_user) == len(lost)


@pytest.mark.slow
def test_memcached_pool_dead_server_affects_only_its_users(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    """A user whose index is on the dead server: their bound sessions raise
    StoreUnavailable (not treated as revoked while the server is away); once
    it is back empty, they are revoked (the index is gone)."""
    pool = fresh_memcached_pool
    store = MemcachedStore(pool.spec)
    victim = pool.servers[1]

    def is_victim(name: str) -> bool:
        return store._server_for(name).spec == victim.address

    def index_name(user: str) -> str:
        return PREFIX + user_storage_key(user) + ":user"

    with SessionMiddleware(user_app, store) as middleware:
        lost_user, lost = kill_with_users(middleware, victim, is_victim, index_name)
        for session in lost:
            with pytest.raises(StoreUnavailable):
                reopened(middleware, session)
        with pytest.raises(StoreUnavailable):
            middleware.user_sessions(lost_user)

        victim.start()  # a restarted memcached is empty: the index is gone
        assert reopened(middleware, lost[0]).user_id is None
        assert middleware.user_sessions(lost_user) == []
