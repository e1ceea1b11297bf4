"""RedisStore under the least-privileged Redis user the docs give (stores.rst).

A careful operator sharing a Redis between apps grants each app's user its
own :confval:`key_prefix` only (``~myapp:*``) and the commands the store
runs, exactly as the docs' ``ACL SETUSER`` line says: every operation of
the store, of a request with the lock and of the operator's commands must
then work, and no key may fall outside the prefix.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import test_redis_cluster_reshard as reshard
from helpers import call, filter_ini, get, run_cli, user_app
from redis.crc import key_slot
from servers import RedisCluster, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.keys import generate_key
from wsgisession.stores.redis import RedisStore

DOCS = Path(__file__).resolve().parents[1] / "docs" / "stores.rst"
PREFIX = "myapp:"


def documented_acl(cluster: bool = False, database: int = 0) -> list[str]:
    """The arguments of the docs' ``ACL SETUSER`` line, its password ``pw``;
    with ``cluster``, plus what the docs add for a Redis Cluster client, and
    with a ``database`` other than 0, what they add for its URL."""
    text = DOCS.read_text()
    line = re.search(r"^ +(ACL SETUSER .*)$", text, re.MULTILINE)
    assert line is not None, "stores.rst gives no ACL SETUSER line"
    words = [">pw" if w == ">password" else w for w in shlex.split(line.group(1))]
    if cluster:
        words += _added(text, r"Redis Cluster client also .*?add ``([^`]+)``")
    if database:
        words += _added(text, r"database other than 0 .*?add ``([^`]+)``")
    return words


def _added(text: str, pattern: str) -> list[str]:
    """The ACL rules the docs add where ``pattern`` says (none if they do
    not: the store then runs into what the user lacks)."""
    more = re.search(pattern, text, re.DOTALL)
    return [] if more is None else more.group(1).split()


@pytest.fixture(params=[0, 1], ids=["db0", "db1"])
def database(request: pytest.FixtureRequest) -> int:
    """The database the app's URL names: 0, or another (``SELECT``)."""
    return int(request.param)


@pytest.fixture
def admin(fresh_redis: ServerProcess, database: int) -> Iterator[redis.Redis]:
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port, db=database)
    client.execute_command(*documented_acl(database=database))
    yield client
    client.close()


@pytest.fixture
def url(fresh_redis: ServerProcess, admin: redis.Redis, database: int) -> str:
    return f"redis://myapp:pw@{fresh_redis.address}/{database}"


def denied(admin: redis.Redis) -> list[str]:
    """What the server refused the app's user (ACL LOG): command or key."""
    entries = admin.execute_command("ACL", "LOG")
    return [entry[b"object"].decode() for entry in entries]


def test_the_documented_acl_user_runs_every_operation(
    url: str, admin: redis.Redis
) -> None:
    store = RedisStore(url, key_prefix=PREFIX)
    key, later = generate_key(), time.time() + 600
    assert store.create(key, b"one", later) == key
    store.update(key, lambda current: (b"two", later), store.load(key))
    with store.lock(key, 1.0, 30.0):  # its key was {myapp:...}:lock: refused
        assert [n.decode()[: len(PREFIX)] for n in admin.keys("*:lock")] == [PREFIX]
    bound, gone = generate_key(), generate_key()
    store.create_user_session("alice", bound, b"b", later)
    store.create_user_session("alice", gone, b"g", later)
    admin.delete(store._name(gone))  # its entry is pruned by the next listing
    assert len(store.user_session_records("alice")) == 1
    assert store.delete_record(next(iter(store.user_session_records("alice"))))
    store.delete(key)
    assert store.load(key) is None
    store.close()
    assert denied(admin) == []
    assert all(name.startswith(PREFIX.encode()) for name in admin.keys("*"))


def test_locked_requests_and_the_operators_commands_under_the_acl(
    url: str,
    admin: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Requests of an app with ``lock = true``, then ``check``, ``sessions``,
    ``revoke`` and ``clear-expired`` reading the app's ini section."""
    keys = f"store = redis\nredis_url = {url}\nkey_prefix = {PREFIX}\nlock = true"
    spec = filter_ini(tmp_path, keys)
    store = RedisStore(url, key_prefix=PREFIX)
    with SessionMiddleware(user_app, store, lock=True) as app:
        headers = call(app, "login=alice", None)
        cookie = next(v for k, v in headers if k == "Set-Cookie").split(";")[0]
        status, _ = get(app, "set=1", cookie)
        assert status.startswith("200"), status
    for argv, said in [
        (("check",), "configuration ok"),
        (("sessions", "alice"), "1 live session of 'alice'"),
        (("revoke", "alice"), "revoked 1 session of 'alice'"),
        (("clear-expired",), "removed 0 expired sessions"),
    ]:
        status, out, _ = run_cli(capsys, argv[0], "--config", spec, *argv[1:])
        assert (status, said in out) == (0, True), (argv, out)
    assert denied(admin) == []


def test_the_documented_acl_on_every_node_of_a_cluster(
    fresh_redis_cluster: RedisCluster,
) -> None:
    """A session's lock lives on its record's node, under the prefix too."""
    nodes = [redis.Redis(host=n.host, port=n.port) for n in fresh_redis_cluster.nodes]
    for node in nodes:
        node.execute_command(*documented_acl(cluster=True))
    url = fresh_redis_cluster.url.replace("://", "://myapp:pw@")
    store = RedisStore(url, key_prefix=PREFIX)
    later = time.time() + 600
    for _ in range(6):  # on each of the three masters, most likely
        key = generate_key()
        store.create_user_session("alice", key, b"one", later)
        store.update(key, lambda current: (b"two", later), store.load(key))
        with store.lock(key, 1.0, 30.0):
            pass
    assert len(store.user_session_records("alice")) == 6
    store.close()
    for node in nodes:
        assert denied(node) == []
        node.close()


def test_the_documented_acl_while_a_slot_moves_to_a_new_master(
    fresh_redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    """A reshard (``redis-cli --cluster reshard``) answers ``ASK`` for the
    keys of the slot it moves; the client then sends ``ASKING`` before the
    command, which the user must be allowed too: the sessions of that slot
    (every load, save, lock and login) failed with ``no permissions``."""
    cluster = fresh_redis_cluster
    for node in cluster.nodes:
        with redis.Redis(host=node.host, port=node.port) as admin:
            admin.execute_command(*documented_acl(cluster=True))
    store = RedisStore(cluster.url.replace("://", "://myapp:pw@"), key_prefix=PREFIX)
    key = generate_key()
    assert store.create(key, b"before", time.time() + 600) == key
    name = store._name(key)
    source, slot = cluster.node_of(name), key_slot(name.encode())
    new = reshard._add_master(cluster, tmp_path / "added")
    with redis.Redis(host=new.host, port=new.port) as admin:
        admin.execute_command(*documented_acl(cluster=True))
    reshard._start_moving(source, new, slot)
    reshard._migrate(source, new, name)
    loaded = store.load(key)  # ASK to the new master
    assert loaded is not None and loaded.payload == b"before"
    with store.lock(key, 1.0, 30.0):
        store.update(key, lambda _: (b"saved", time.time() + 600), loaded)
    reshard._finish_moving(cluster, new, slot)
    moved = store.load(key)  # MOVED: the cluster is mapped again
    assert moved is not None and moved.payload == b"saved"
    store.close()
    with redis.Redis(host=new.host, port=new.port) as admin:
        assert denied(admin) == []
