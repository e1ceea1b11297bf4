"""RedisStore.sweep_expired prunes the user indexes of users who never
come back (a sorted set per user with no TTL, which only that user's next
login or listing pruned): on a single server and on a Redis Cluster, with
a master down, and never at the cost of a live or in-progress login's entry.
Real redis-server processes; the interleavings are forced through a
subclass of the store's own index class."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from servers import RedisCluster, ServerProcess

from wsgisession.cleanup import SWEEP_BATCH
from wsgisession.keys import storage_key
from wsgisession.stores import RedisStore
from wsgisession.stores._redis_sweep import SCAN_COUNT, IndexSweep
from wsgisession.stores._redis_users import RedisUserIndex
from wsgisession.stores.base import PENDING_GRACE, Record, generate_key, now

PREFIX = "wsgisession:"


def index_keys(nodes: list[ServerProcess]) -> list[bytes]:
    """The user index keys every node holds (KEYS, on each node)."""
    found: list[bytes] = []
    for node in nodes:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            found += client.keys(PREFIX + "user:*")
        finally:
            client.close()
    return found


def short_logins(store: RedisStore, users: int) -> list[str]:
    """Log ``users`` users in once each, with sessions that end at once;
    waits until the server has dropped every record."""
    keys = [generate_key() for _ in range(users)]
    for number, key in enumerate(keys):
        assert store.create_user_session(f"u{number}", key, b"p", now() + 0.05)
    while any(store._call("exists", store._name(key)) for key in keys):
        time.sleep(0.02)
    return keys


def other_keys(store: RedisStore, count: int) -> None:
    """``count`` keys that are no user index, in the way of the scan."""
    store._call("mset", {f"{PREFIX}other{number}": b"x" for number in range(count)})


def sweep_until_done(store: RedisStore, calls: int) -> int:
    """Stale entries removed by ``calls`` sweeps, as the middleware asks."""
    return sum(store.sweep_expired(SWEEP_BATCH) for _ in range(calls))


@pytest.fixture
def store(clean_redis: ServerProcess) -> Iterator[RedisStore]:
    made = RedisStore(clean_redis.url)
    yield made
    made.close()


def test_the_indexes_of_users_who_never_came_back_go(
    store: RedisStore, clean_redis: ServerProcess
) -> None:
    short_logins(store, 30)
    other_keys(store, 3 * SCAN_COUNT)  # more than one SCAN step's worth
    assert len(index_keys([clean_redis])) == 30
    assert sweep_until_done(store, 40) == 30  # each stale entry counted
    assert index_keys([clean_redis]) == []
    assert store.sweep_expired(SWEEP_BATCH) == 0


def test_live_and_pending_entries_stay_and_an_abandoned_login_goes(
    store: RedisStore, clean_redis: ServerProcess
) -> None:
    live = generate_key()
    assert store.create_user_session("alice", live, b"p", now() + 3600)
    index = store._users.key("alice")
    pending = storage_key(generate_key())  # a login between its two writes
    abandoned = storage_key(generate_key())  # a login that died long ago
    store._call("zadd", index, {pending: int(now() * 1000)})
    store._call("zadd", index, {abandoned: int((now() - PENDING_GRACE - 1) * 1000)})
    assert sweep_until_done(store, 5) == 1
    left = {m.decode() for m in store._call("zrange", index, 0, -1)}
    assert left == {storage_key(live), pending}


class LoginDuringPrune(RedisUserIndex):
    """A user index whose prune lets a login of the same user write its
    pending entry (the ``ZADD`` that follows the login's own pruning)
    between reading the records (all gone) and removing their entries."""

    login: tuple[str, int] | None = None

    def _live_records(self, names: list[str], held: set[str]) -> dict[str, Record]:
        live = super()._live_records(names, held)
        if self.login is None:
            self.login = (storage_key(generate_key()), int(now() * 1000))
            self._store._call("zadd", self.key("u0"), dict([self.login]))
        return live


def test_a_login_during_a_sweep_keeps_its_entry(store: RedisStore) -> None:
    short_logins(store, 1)
    hooked = LoginDuringPrune(store, PREFIX)
    store._users = hooked
    store._index_sweep = IndexSweep(store, hooked, PREFIX)
    assert sweep_until_done(store, 3) == 1  # the expired session's entry
    assert hooked.login is not None
    members = store._call("zrange", hooked.key("u0"), 0, -1, withscores=True)
    assert members == [(hooked.login[0].encode(), hooked.login[1])]


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.text(st.sampled_from("ab*?[]\\^-:{}"), max_size=4),
    st.text(st.sampled_from("ab*?[]\\^-:{}"), max_size=4),
)
@example("a*", "ab")
@example("?", "b")
@example("[ab]", "b")
def test_a_sweep_prunes_only_the_indexes_under_its_own_prefix(
    clean_redis: ServerProcess, mine: str, theirs: str
) -> None:
    if theirs.startswith(mine):  # their keys are under my prefix too
        return
    redis.Redis(host=clean_redis.host, port=clean_redis.port).flushdb()
    sweeping = RedisStore(clean_redis.url, key_prefix=mine)
    other = RedisStore(clean_redis.url, key_prefix=theirs)
    try:
        key = generate_key()
        assert other.create_user_session("bob", key, b"p", now() + 3600)
        other._call("zadd", other._users.key("bob"), {storage_key(key): 0})
        sweep_until_done(sweeping, 3)
        assert storage_key(key) in other.user_session_records("bob")
        assert other._call("zcard", other._users.key("bob")) == 1
    finally:
        sweeping.close()
        other.close()


@pytest.mark.slow
def test_a_cluster_sweep_reaches_every_master_and_skips_one_that_is_down(
    fresh_redis_cluster: RedisCluster,
) -> None:
    cluster = fresh_redis_cluster
    store = RedisStore(cluster.url)
    try:
        keys = short_logins(store, 30)
        on_node = [len(index_keys([node])) for node in cluster.nodes]
        assert all(on_node), on_node  # indexes on every master
        victim = cluster.nodes[1]
        # Prunable while the victim is down: index and record elsewhere.
        elsewhere = sum(
            victim not in (cluster.node_of(store._users.key(f"u{number}")),
                           cluster.node_of(store._name(key)))
            for number, key in enumerate(keys)
        )  # fmt: skip
        victim.stop(crash=True)
        assert sweep_until_done(store, 40) == elsewhere  # and raises nothing
        assert len(index_keys(cluster.nodes[::2])) == 30 - on_node[1] - elsewhere
        victim.start()
        cluster.wait_until_ok()
        assert sweep_until_done(store, 40) == 30 - elsewhere
        assert index_keys(cluster.nodes) == []
    finally:
        store.close()


def test_clear_expired_prunes_every_index_and_counts_no_record(
    store: RedisStore, clean_redis: ServerProcess
) -> None:
    short_logins(store, 30)
    live = generate_key()
    assert store.create_user_session("alice", live, b"p", now() + 3600)
    other_keys(store, 3 * SCAN_COUNT)
    assert store.clear_expired() == 0  # Redis expired the records itself
    assert index_keys([clean_redis]) == [store._users.key("alice").encode()]


def test_a_sweep_the_server_refuses_says_why(
    fresh_redis: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """An app user given stores.rst's ACL as it was before the sweeps (no
    ``+scan``): the sweeps can never prune, and the log must say why."""
    admin = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    commands = "+get +set +del +getdel +mget +zadd +zrange +zscore +zrem +eval +evalsha"
    admin.execute_command(
        "ACL", "SETUSER", "myapp", "on", ">pw", "resetkeys", "~myapp:*",
        "resetchannels", "-@all", *commands.split(),
    )  # fmt: skip
    store = RedisStore(f"redis://myapp:pw@{fresh_redis.address}/0", key_prefix="myapp:")
    try:
        key = generate_key()
        assert store.create_user_session("u0", key, b"p", now() + 0.05)
        while admin.exists(store._name(key)):
            time.sleep(0.02)
        with caplog.at_level("WARNING", logger="wsgisession.stores.redis"):
            assert store.sweep_expired(SWEEP_BATCH) == 0
        assert admin.exists(store._users.key("u0"))  # not pruned: refused
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("SCAN" in message for message in warned), warned
        assert any("no permissions" in message for message in warned), warned
    finally:
        store.close()
        admin.close()
