"""A Redis Cluster store while slots move to a master added under live traffic.

``redis-cli --cluster add-node`` then ``reshard`` (or ``rebalance``) moves
slots to a master that owns none yet. While a slot moves, its old master
answers ``ASK`` for the keys already moved (and for absent ones, such as a
new session's); the client sends the command again to the new master. The
client maps a cluster from ``CLUSTER SLOTS``, where a master without slots
does not appear, so its ``ASK`` named a node redis-py did not know: every
load, save, login, lock, listing and revocation of a session in that slot
failed with an AttributeError from inside redis-py, not ``StoreUnavailable``,
through the store's own client as through a ``RedisCluster`` passed in.
Here the slot is held half-way by hand (``CLUSTER SETSLOT ... IMPORTING`` /
``MIGRATING`` and ``MIGRATE``), as ``redis-cli`` leaves it between keys.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot
from servers import RedisCluster, ServerProcess, redis_cluster_node

from wsgisession.keys import generate_key, storage_key
from wsgisession.stores import RedisStore

pytestmark = pytest.mark.slow


def _client(node: ServerProcess) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port, socket_timeout=5)


def _node_id(node: ServerProcess) -> str:
    with _client(node) as client:
        return str(client.execute_command("CLUSTER MYID").decode())


def _name(key: str) -> str:
    return "wsgisession:" + storage_key(key)


def _key_in_slot(slot: int) -> str:
    """A new session key whose record hashes to ``slot``."""
    while True:
        key = generate_key()
        if key_slot(_name(key).encode()) == slot:
            return key


def _add_master(cluster: RedisCluster, workdir: Path) -> ServerProcess:
    """A new master joined to ``cluster``, without slots (``add-node``)."""
    node = redis_cluster_node(workdir)
    node.start()
    cluster.nodes.append(node)  # stopped with the cluster
    first = cluster.nodes[0].address
    subprocess.run(
        [cluster.cli, "--cluster", "add-node", node.address, first],
        check=True,
        capture_output=True,
        timeout=60,
    )
    cluster.wait_until_ok()
    return node


def _start_moving(source: ServerProcess, target: ServerProcess, slot: int) -> None:
    with _client(target) as client:
        client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", _node_id(source))
    with _client(source) as client:
        client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", _node_id(target))


def _migrate(source: ServerProcess, target: ServerProcess, name: str) -> None:
    with _client(source) as client:
        client.execute_command("MIGRATE", target.host, target.port, name, 0, 5000)


def _finish_moving(cluster: RedisCluster, target: ServerProcess, slot: int) -> None:
    """``CLUSTER SETSLOT slot NODE``, to the new owner first, as redis-cli does."""
    owner = _node_id(target)
    for node in sorted(cluster.nodes, key=lambda node: node is not target):
        with _client(node) as client:
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", owner)


@pytest.fixture(params=["url", "client"])
def store(
    request: pytest.FixtureRequest, fresh_redis_cluster: RedisCluster
) -> Iterator[RedisStore]:
    """A store on the cluster's URL, or on a ``RedisCluster`` passed in."""
    if request.param == "url":
        store = RedisStore(fresh_redis_cluster.url)
        yield store
        store.close()
        return
    first = fresh_redis_cluster.nodes[0]
    with redis.RedisCluster(host=first.host, port=first.port) as client:
        yield RedisStore(client=client)


def _later() -> float:
    return time.time() + 600


def test_a_slot_moving_to_a_new_master_keeps_serving_its_sessions(
    fresh_redis_cluster: RedisCluster, store: RedisStore, tmp_path: Path
) -> None:
    cluster = fresh_redis_cluster
    key = generate_key()
    assert store.create(key, b"before", _later()) == key  # the cluster is mapped
    source = cluster.node_of(_name(key))
    slot = key_slot(_name(key).encode())
    new = _add_master(cluster, tmp_path / "added")
    _start_moving(source, new, slot)
    _migrate(source, new, _name(key))

    loaded = store.load(key)  # ASK to the new master
    assert loaded is not None and loaded.payload == b"before"
    assert store.update(key, lambda _: (b"saved", _later()), loaded) == key
    with store.lock(key, timeout=2.0, ttl=5.0):
        pass
    other = _key_in_slot(slot)  # a login landing in the moving slot
    assert store.create(other, b"new", _later()) == other

    _finish_moving(cluster, new, slot)
    for moved, payload in ((key, b"saved"), (other, b"new")):
        record = store.load(moved)  # MOVED: the new owner
        assert record is not None and record.payload == payload


def test_a_session_on_a_slot_moving_to_a_new_master_is_listed_and_revoked(
    fresh_redis_cluster: RedisCluster, store: RedisStore, tmp_path: Path
) -> None:
    cluster = fresh_redis_cluster
    key = generate_key()
    assert store.create_user_session("alice", key, b"x", _later()) == key
    source = cluster.node_of(_name(key))
    slot = key_slot(_name(key).encode())
    new = _add_master(cluster, tmp_path / "added")
    _start_moving(source, new, slot)
    _migrate(source, new, _name(key))

    assert list(store.user_session_records("alice")) == [storage_key(key)]
    assert store.delete_record(storage_key(key))  # "sign out everywhere"
    assert store.user_session_records("alice") == {}

    _finish_moving(cluster, new, slot)
    assert store.load(key) is None
    assert store.user_session_records("alice") == {}
