"""A Redis Cluster master replaced by its replica, under live traffic.

Three masters with one replica each (tests/redis_replicas.py); logged-in
users read and write their sessions in threads through the middleware over
``RedisStore("redis+cluster://...")``, with and without ``lock = true``
(tests/failover_traffic.py), while a replica takes over: by a graceful
``CLUSTER FAILOVER``, or after its master is killed with SIGKILL, which is
then started again and rejoins as a replica. What users see: only
``StoreUnavailable``, only for the killed master's sessions, only until its
replica is promoted, no acknowledged save lost by the store (Redis's
asynchronous replication can lose one: shown, and documented), every user's
sessions listed and revocable, a lock held as its master died released, the
index sweep walking the new masters, and the same store object serving it
all (no restart of the app). Each test starts its own six nodes (~6 s).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import webtest
from failover_traffic import Traffic, counter, load_errors_while, name_of
from redis_replicas import ReplicatedCluster, ask
from servers import RedisCluster, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionError, StoreUnavailable
from wsgisession.stores import RedisStore

pytestmark = pytest.mark.slow

#: Seconds of traffic before and after each change of masters.
STEADY = 1.0
#: Seconds past the promotion of the replica by which every failure ends:
#: the store's client refreshes its map on the first error that follows.
RECOVERY = 1.0


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[ReplicatedCluster]:
    cluster = ReplicatedCluster(tmp_path / "replicated-cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def traffic_on(cluster: ReplicatedCluster, lock: bool) -> Traffic:
    middleware = SessionMiddleware(counter, store=RedisStore(cluster.url), lock=lock)
    return Traffic(middleware, threads=4)


def assert_users_listed_and_revocable(traffic: Traffic) -> None:
    """Every user still has each session listed; revoking them all empties
    each (its next request counts from 0)."""
    middleware = traffic.middleware
    for user, keys in traffic.keys.items():
        assert len(middleware.user_sessions(user)) == len(keys), user
        assert middleware.revoke_user_sessions(user) == len(keys), user
        assert middleware.user_sessions(user) == []
    traffic.acknowledged = dict.fromkeys(traffic.acknowledged, 0)
    assert traffic.lost_saves() == {}  # nothing came back either


@pytest.mark.parametrize("lock", [False, True])
def test_graceful_failover_is_seamless(
    replicated_cluster: ReplicatedCluster, lock: bool
) -> None:
    traffic = traffic_on(replicated_cluster, lock)
    master = replicated_cluster.masters()[0]
    replica = replicated_cluster.replica_of(master)
    traffic.start()
    try:
        time.sleep(STEADY)
        replicated_cluster.failover(replica)
        time.sleep(STEADY)
    finally:
        traffic.stop()
    assert traffic.failures == []
    assert traffic.visits > 100
    assert traffic.lost_saves() == {}
    assert_users_listed_and_revocable(traffic)


def victim_of(cluster: ReplicatedCluster) -> ServerProcess:
    """A master other than the URL's node (the store's first way in)."""
    return next(m for m in cluster.masters() if m is not cluster.nodes[0])


@pytest.mark.parametrize("lock", [False, True])
def test_a_killed_master_fails_its_sessions_until_its_replica_takes_over(
    replicated_cluster: ReplicatedCluster, lock: bool
) -> None:
    traffic = traffic_on(replicated_cluster, lock)
    victim = victim_of(replicated_cluster)
    names = {name_of(key) for keys in traffic.keys.values() for key in keys}
    on_victim = {n for n in names if replicated_cluster.node_of(n) is victim}
    replica = replicated_cluster.replica_of(victim)
    traffic.start()
    try:
        time.sleep(STEADY)
        victim.stop(crash=True)
        replicated_cluster.wait_promoted(replica)
        promoted_at = time.monotonic() - traffic.began
        time.sleep(STEADY)
        victim.start()  # it rejoins as its old replica's replica
        replicated_cluster.wait_until(
            lambda: victim in replicated_cluster.synced_replicas(), "the rejoin"
        )
        time.sleep(STEADY)
    finally:
        traffic.stop()
    escaped = [f for f in traffic.failures if not isinstance(f.error, SessionError)]
    assert escaped == [], [repr(f.error) for f in escaped]
    assert {f.name for f in traffic.failures} <= on_victim
    assert traffic.last_failure_at() < promoted_at + RECOVERY
    assert traffic.visits > 100
    assert_users_listed_and_revocable(traffic)


def test_a_lock_held_as_its_master_dies_is_released_on_the_new_master(
    replicated_cluster: ReplicatedCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A request holding the lock when its master dies cannot release it
    (a warning); the key reached the replica, which now serves the slot.
    The same process's next request of that session must not wait out
    lock_ttl (LockTimeout after lock_timeout, for every request meanwhile)."""
    store = RedisStore(replicated_cluster.url)
    victim = victim_of(replicated_cluster)
    replica = replicated_cluster.replica_of(victim)
    key = next(
        key
        for key in (f"failover-lock-{i}" for i in range(1000))
        if replicated_cluster.node_of(store._name(key)) is victim
    )
    with caplog.at_level(logging.WARNING), store.lock(key, timeout=1, ttl=60):
        assert replicated_cluster.replicated(victim)
        victim.stop(crash=True)
        replicated_cluster.wait_promoted(replica)
    assert "could not release the lock" in caplog.text
    with store.lock(key, timeout=2, ttl=60):
        pass


def test_an_acknowledged_save_the_replica_never_got_is_lost_at_failover(
    replicated_cluster: ReplicatedCluster,
) -> None:
    """Redis replicates asynchronously: a save the master acknowledged and
    had not yet sent to its replica is gone once the replica takes over.
    The replica's link is cut just before that one write, as a lagging or
    briefly disconnected replica's is; the store never hears of it.
    docs/stores.rst must say so."""
    traffic = traffic_on(replicated_cluster, lock=False)
    victim = victim_of(replicated_cluster)
    replica = replicated_cluster.replica_of(victim)
    key = next(
        key
        for keys in traffic.keys.values()
        for key in keys
        if replicated_cluster.node_of(name_of(key)) is victim
    )
    visit = webtest.TestApp(traffic.middleware)
    visit.set_cookie("sessionid", key)
    assert visit.get("/").text == "1"
    assert replicated_cluster.replicated(victim)
    # The replica's link cut, and its reconnection refused (it has no
    # password); the store's pooled connection is already signed in.
    cut = redis.Redis(host=victim.host, port=victim.port, single_connection_client=True)
    cut.execute_command("ACL SETUSER default resetpass >not-the-replicas")
    assert cut.execute_command("CLIENT KILL TYPE replica") == 1
    cut.close()
    assert visit.get("/").text == "2"  # acknowledged: the master has it
    victim.stop(crash=True)
    replicated_cluster.wait_promoted(replica)
    replicated_cluster.wait_until(lambda: _serves(visit), "the store to recover")
    assert visit.get("/peek").text == "1"  # the second save is lost
    stores_rst = (Path(__file__).parent.parent / "docs" / "stores.rst").read_text()
    assert "Redis replicates asynchronously" in " ".join(stores_rst.split())


def _serves(visit: webtest.TestApp) -> bool:
    try:
        visit.get("/peek")
    except StoreUnavailable:
        return False
    return True


def test_map_refreshes_never_cut_a_healthy_masters_command_short(
    clean_redis_cluster: RedisCluster,
) -> None:
    """RedisCluster refreshes its map of the cluster on every node error
    (each request of a dead master's sessions, until its replica takes
    over) and closes the idle connections of the nodes it asks: threads
    loading sessions of healthy masters meanwhile must see no error, where
    a connection closed under its command raised ValueError ("I/O
    operation on closed file") or AttributeError out of redis-py."""
    store = RedisStore(clean_redis_cluster.url)
    keys = [f"healthy-{i}" for i in range(30)]
    for key in keys:
        assert store.create(key, b"x" * 100, time.time() + 600) == key
    # As after each node error:
    refresh_map = store._client.nodes_manager.initialize
    errors = load_errors_while(store, keys, refresh_map, 2)
    assert errors == [], collections.Counter(type(e).__name__ for e in errors)


def test_the_index_sweep_walks_the_new_master_after_a_failover(
    replicated_cluster: ReplicatedCluster,
) -> None:
    """Users who never come back leave indexes on every master; after a
    graceful failover the store's map still names the old master (now a
    replica) until a command meets a MOVED: the sweep prunes every index
    all the same, and from then on walks the new master, not the replica."""
    store = RedisStore(replicated_cluster.url)
    middleware = SessionMiddleware(counter, store=store)
    for user in range(30):
        session = middleware.open_session()
        session.bind_user(f"gone-{user}")
        session.set_expiry(1)
        session.save()
    old = replicated_cluster.masters()[0]
    replicated_cluster.failover(replicated_cluster.replica_of(old))
    time.sleep(1.1)  # every session has expired; their indexes remain
    removed = sum(store.sweep_expired(1000) for _ in range(10))
    assert removed == 30
    walked = {name for name, _node in store._index_sweep._masters()}
    assert walked == {node.address for node in replicated_cluster.masters()}
    assert old.address not in walked
    for node in replicated_cluster.masters():
        assert ask(node, "KEYS", "wsgisession:user:*") == []
