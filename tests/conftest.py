"""Shared fixtures: real memcached and redis-server processes on loopback.

``memcached_server`` / ``redis_server`` live for the whole run;
``clean_memcached`` / ``clean_redis`` hand out the same servers emptied, so
tests do not see each other's records. ``fresh_memcached`` / ``fresh_redis``
start a private server for one test, which may stop and restart it
(``stop(crash=True)`` kills it at once).

The quick loop (``pytest -m "not slow"``, ~1900 tests, aimed at under 20 s
on two idle cores) leaves out:

* the tests that need a server cluster or a database server (PostgreSQL,
  MariaDB, a Redis Cluster, a memcached pool) and the SQL store on SQLite:
  :func:`pytest_collection_modifyitems` marks them ``slow``, so a suite run
  over every store keeps its local kinds (memory, file, sqlite) and its
  single memcached / redis server;
* the modules whose every test is slow (``pytestmark = pytest.mark.slow``),
  not even imported (:func:`pytest_ignore_collect`): left out, not counted
  as deselected;
* most pairs of the matrices whose cases do not depend on the store: every
  corrupt payload on the memory store and seven of them on every store
  (``test_corrupt_records``), bad user ids on the memory store
  (``test_user_sessions``), two wrong values of each option instead of all
  (``test_bad_config``). Their other pairs are marked ``slow`` where they
  are parametrized.

It also tries 20 hypothesis examples per test instead of 100 (a test that
sets its own count, such as a state machine's, takes a fifth of it through
``helpers.examples``) and keeps its temporary files on the RAM disk
(:func:`_use_ram_disk`). The full run
(``pytest`` alone, as CI runs it) has every test. A new test stays quick by
moving time with ``frozen_clock`` rather than sleeping, and by waiting on
lock, busy and socket timeouts of 0.05-0.1 s, not seconds.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import servers
from helpers import FakeClock, fake_clock
from hypothesis import settings
from servers import MissingBinary, ServerProcess

Server = TypeVar("Server", bound=ServerProcess)

#: Fixtures that start a database server or a group of servers (seconds each).
HEAVY_SERVERS = {
    "postgresql_server",
    "mariadb_server",
    "redis_cluster",
    "memcached_pool",
    "fresh_redis_cluster",
    "fresh_memcached_pool",
}
#: Parameters (store kinds) that reach those servers through a fixture asked
#: for at run time (helpers.store_argument, sql_support.sql_url), and the SQL
#: store on SQLite, whose suites repeat the SQLite store's at SQLAlchemy's cost.
HEAVY_KINDS = {
    "sql-sqlite",
    "sql-postgresql",
    "sql-mariadb",
    "redis-cluster",
    "memcached-pool",
    "postgresql",
    "mariadb",
}


def _needs_heavy_servers(item: pytest.Item) -> bool:
    if HEAVY_SERVERS.intersection(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    values = callspec.params.values() if callspec is not None else ()
    return any(isinstance(value, str) and value in HEAVY_KINDS for value in values)


def _quick_loop(config: pytest.Config) -> bool:
    return bool(config.getoption("markexpr") == "not slow")


settings.register_profile("quick", max_examples=20)


#: Where the quick loop keeps its temporary files when the user chose no place.
RAM_DISK = Path("/dev/shm")


def _use_ram_disk(config: pytest.Config) -> None:
    """Temporary files on a RAM disk: SQLite and file-store set-ups (fsync,
    a journal per new database) cost ten times less there than on a busy
    disk. Only when neither ``TMPDIR`` (``TEMP``, ``TMP``) nor
    ``--basetemp`` names a place, and the RAM disk has room to spare."""
    chosen = {"TMPDIR", "TEMP", "TMP", "PYTEST_DEBUG_TEMPROOT"} & set(os.environ)
    if config.option.basetemp or chosen:
        return
    try:
        roomy = shutil.disk_usage(RAM_DISK).free > 1 << 30
    except OSError:
        return
    if roomy and os.access(RAM_DISK, os.W_OK | os.X_OK):
        tempfile.tempdir = str(RAM_DISK)


def pytest_configure(config: pytest.Config) -> None:
    """The quick loop tries fewer hypothesis examples and keeps its
    temporary files in RAM; the full run, the defaults."""
    if _quick_loop(config):
        settings.load_profile("quick")
        _use_ram_disk(config)


#: A module-level ``pytestmark`` that makes every test of the module slow
#: (a comment may follow it).
WHOLLY_SLOW = re.compile(r"^pytestmark = pytest\.mark\.slow[ \t]*(#.*)?$", re.MULTILINE)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The quick loop skips importing the modules whose every test is slow
    (browsers, packaging, subprocess servers): their imports alone cost a
    second, and ``-m "not slow"`` would deselect all their tests anyway."""
    if not (_quick_loop(config) and collection_path.name.startswith("test_")):
        return None
    if collection_path.suffix != ".py":
        return None
    source = collection_path.read_text(encoding="utf-8")
    return True if WHOLLY_SLOW.search(source) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a database server or a cluster."""
    for item in items:
        if _needs_heavy_servers(item):
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take what collection built (the modules, thousands of test items) out
    of the garbage collector's rounds: it lives as long as the run, and every
    full collection would walk it again (~1 s over the quick loop)."""
    gc.freeze()


def _started(factory: Callable[[Path], Server], workdir: Path) -> Server:
    try:
        server = factory(workdir)
    except MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    return server


@pytest.fixture(scope="session")
def memcached_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    server = _started(servers.memcached, tmp_path_factory.mktemp("memcached"))
    yield server
    server.stop(crash=True)  # nothing kept: no graceful exit to wait for


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = _started(servers.redis_server, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop(crash=True)


@pytest.fixture
def clean_memcached(memcached_server: ServerProcess) -> ServerProcess:
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    client = Client((memcached_server.host, memcached_server.port), timeout=5)
    try:
        client.flush_all(noreply=False)
    finally:
        client.close()
    return memcached_server


@pytest.fixture(scope="session")
def redis_flusher(redis_server: ServerProcess) -> Iterator[object]:
    """One client for ``clean_redis``'s FLUSHDB: a new redis-py client's
    handshake costs 2 ms, a FLUSHDB on this one 0.1 ms."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@pytest.fixture
def clean_redis(redis_server: ServerProcess, redis_flusher: object) -> ServerProcess:
    redis_flusher.flushdb()  # type: ignore[attr-defined]
    return redis_server


@pytest.fixture
def fresh_memcached(tmp_path: Path) -> Iterator[ServerProcess]:
    server = _started(servers.memcached, tmp_path)
    yield server
    server.stop(crash=True)  # private to the test: nothing to shut down cleanly


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[ServerProcess]:
    server = _started(servers.redis_server, tmp_path)
    yield server
    server.stop(crash=True)


@pytest.fixture
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh headless Chromium (selenium WebDriver) with an empty profile."""
    import browser

    profile = tmp_path_factory.mktemp("chromium-profile")
    try:
        driver = browser.start_chromium(profile)
    except browser.MissingBrowser as exc:
        pytest.fail(str(exc), pytrace=False)
    yield driver
    browser.stop_chromium(driver, profile)


@pytest.fixture
def young_heap() -> Iterator[None]:
    """``gc.collect()`` in the test sees only the objects made since this
    fixture ran: the rest of the run's heap is frozen (``gc.freeze()``).

    Request it before the fixtures that build what the test judges
    (``@pytest.mark.usefixtures("young_heap")``). A full collection of the
    whole run's heap takes ~0.4 s each; and garbage of other tests, frozen,
    cannot warn inside the test's ``catch_warnings`` block. What was frozen
    stays so, as what collection built does (:func:`pytest_collection_finish`):
    ``gc.unfreeze()`` would thaw that too.
    """
    gc.freeze()
    yield


@pytest.fixture
def frozen_clock() -> Iterator[FakeClock]:
    """The one clock of wsgisession, standing still until the test moves it."""
    with fake_clock() as fake:
        yield fake


# -- SQL databases (SQLStore) ------------------------------------------------------


def _refuse_in_quick_loop(request: pytest.FixtureRequest, what: str) -> None:
    """The quick loop starts no database server or cluster (seconds each): a
    test that reaches one without a heavy parameter or fixture name (see
    :data:`HEAVY_SERVERS`) must carry the slow marker itself."""
    if _quick_loop(request.config):
        pytest.fail(
            f"this test starts {what} in the quick loop: mark it slow",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgresql_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[servers.DatabaseServer]:
    """A PostgreSQL 15 server for the whole run (apt package ``postgresql``)."""
    _refuse_in_quick_loop(request, "PostgreSQL")
    server = _started(servers.postgresql, tmp_path_factory.mktemp("postgresql"))
    yield server
    server.remove()


@pytest.fixture(scope="session")
def mariadb_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[servers.DatabaseServer]:
    """A MariaDB server for the whole run (apt package ``mariadb-server``)."""
    _refuse_in_quick_loop(request, "MariaDB")
    server = _started(servers.mariadb, tmp_path_factory.mktemp("mariadb"))
    servers.mariadb_setup(server)
    yield server
    server.remove()


# -- several servers: a Redis Cluster and a memcached pool ----------------------
#
# ``redis_cluster`` / ``memcached_pool`` live for the whole run and
# ``clean_redis_cluster`` / ``clean_memcached_pool`` hand them out emptied;
# ``fresh_redis_cluster`` / ``fresh_memcached_pool`` are private to one test,
# which may kill and restart their nodes.


Group = TypeVar("Group", servers.RedisCluster, servers.MemcachedPool)


def _started_group(factory: Callable[[Path], Group], workdir: Path) -> Group:
    """``factory(workdir)`` started; a group that fails half-way is stopped."""
    try:
        group = factory(workdir)
    except MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        group.start()
    except BaseException:
        group.stop()
        raise
    return group


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[servers.RedisCluster]:
    _refuse_in_quick_loop(request, "a Redis Cluster")
    workdir = tmp_path_factory.mktemp("redis-cluster")
    cluster = _started_group(servers.RedisCluster, workdir)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def memcached_pool(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[servers.MemcachedPool]:
    _refuse_in_quick_loop(request, "a memcached pool")
    pool = _started_group(servers.MemcachedPool, tmp_path_factory.mktemp("mc-pool"))
    yield pool
    pool.stop()


@pytest.fixture
def clean_redis_cluster(redis_cluster: servers.RedisCluster) -> servers.RedisCluster:
    import redis

    for node in redis_cluster.nodes:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            client.flushall()
        finally:
            client.close()
    return redis_cluster


@pytest.fixture
def clean_memcached_pool(
    memcached_pool: servers.MemcachedPool,
) -> servers.MemcachedPool:
    from pymemcache.client.base import Client

    for server in memcached_pool.servers:
        client = Client((server.host, server.port), timeout=5)
        try:
            client.flush_all(noreply=False)
        finally:
            client.close()
    return memcached_pool


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[servers.RedisCluster]:
    cluster = _started_group(servers.RedisCluster, tmp_path / "redis-cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def fresh_memcached_pool(tmp_path: Path) -> Iterator[servers.MemcachedPool]:
    pool = _started_group(servers.MemcachedPool, tmp_path)
    yield pool
    pool.stop()


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic garbage collector off for the test: a lock that only a
    collection would release must not look free."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
