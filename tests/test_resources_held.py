"""What a store holds over a long-running process: descriptors and connections
are released when it is dropped, closed, or done with a burst of threads.

Each test counts what the real thing counts: the process's open descriptors
(``/proc/self/fd``) or the memcached server's own ``curr_connections``.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import call, get, increment_app, new_session
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    RedisStore,
    SQLiteStore,
    SQLStore,
)

#: Connections a MemcachedStore opens per server, in use or idle (docs/stores.rst).
KEEP_IDLE = 100

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc"
)


def open_descriptors(target: str | None = None) -> int:
    """How many descriptors this process has open (to ``target`` only, if given)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += target is None or os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:  # the one listdir itself had open, closed since
            continue
    return count


def memcached_clients(server: ServerProcess) -> int:
    """The connections the memcached server has open, not counting ours."""
    client = Client((server.host, server.port), timeout=5)
    try:
        return int(client.stats()[b"curr_connections"]) - 1
    finally:
        client.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def later() -> float:
    return time.time() + 600


@pytest.mark.slow
@pytest.mark.usefixtures("young_heap")  # only this test's objects are collected
def test_a_file_store_dropped_without_close_releases_its_lock_files(
    tmp_path: Path,
) -> None:
    """An app reloaded in-process (tests, an embedding server) drops its store:
    the lock files' descriptors must go with it, not stay open for good."""
    before = open_descriptors()
    for _ in range(3):
        store = FileStore(tmp_path / "sessions")
        for _ in range(60):  # keys in dozens of shards
            key = generate_key()
            store.create_user_session("alice", key, b"x", later())
            with store.lock(key, 1.0, 60.0):
                store.update(key, lambda c: (b"y", later()), store.load(key))
        # 60 random keys fall in some 53 of the 256 shards, at times fewer
        # than 50 (one run in twelve): a bound they always pass.
        assert open_descriptors() > before + 30
        del store
        gc.collect()
    assert open_descriptors() == before


@pytest.mark.usefixtures("young_heap")  # only this test's objects are collected
def test_sqlite_connections_of_ended_threads_close_without_a_warning(
    tmp_path: Path,
) -> None:
    """A thread-per-request server (the demo's, Flask's development server):
    each request's thread takes a pooled connection for each statement and
    leaves none of its own behind: one stays idle for the next request,
    closed by ``close()``, and none is reported as left open: Python 3.13
    warns (ResourceWarning) of a connection collected unclosed, which under
    ``-W error`` fails an app's own tests."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)

    def request() -> None:
        store.create(generate_key(), b"x", later())

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(3):
                thread = threading.Thread(target=request)
                thread.start()
                thread.join()
            gc.collect()
        assert [str(warning.message) for warning in caught] == []
        assert open_descriptors(str(path)) == 1  # the idle one
        store.close()
        assert open_descriptors(str(path)) == 0
    finally:
        store.close()


def test_a_sqlite_database_that_cannot_be_opened_leaves_no_unraisable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose opening failed is collected at once: closing it
    then must not report an error of its own on stderr."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    path.mkdir(mode=0o700)  # after the constructor, which refuses a directory
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    with pytest.raises(StoreUnavailable, match="unable to open"):
        store.load(generate_key())
    gc.collect()
    assert reported == []


@pytest.mark.slow
def test_memcached_keeps_a_bounded_pool_after_a_burst_of_threads(
    fresh_memcached: ServerProcess,
) -> None:
    """A thread-per-request server under a burst of concurrent requests: the
    connections opened for it are not all kept once the threads are gone."""
    store = MemcachedStore(fresh_memcached.address)
    threads = KEEP_IDLE + 150
    barrier = threading.Barrier(threads)

    def request() -> None:
        barrier.wait()
        for _ in range(3):
            store.load(generate_key())

    try:
        started = [threading.Thread(target=request) for _ in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
        assert len(store._servers[0]._free) <= KEEP_IDLE
        # The server counts a closed connection once it has read the close.
        wait_for(lambda: memcached_clients(fresh_memcached) <= KEEP_IDLE)
    finally:
        store.close()


def test_memcached_close_also_closes_a_connection_in_use(
    fresh_memcached: ServerProcess,
) -> None:
    """``close()`` while a request waits on the server (an app shutting down,
    reloaded): that request's connection is closed when its command ends,
    not put back in the pool of a closed store."""
    store = MemcachedStore(fresh_memcached.address, timeout=10)
    store.load(generate_key())  # one pooled connection
    (server,) = store._servers
    fresh_memcached.pause()
    try:
        request = threading.Thread(target=store.load, args=(generate_key(),))
        request.start()
        wait_for(lambda: not server._free)  # taken: the command is on its way
        store.close()
    finally:
        fresh_memcached.resume()
    request.join()
    # The server counts a connection until its worker thread has read the
    # close, which may come after the request's thread has ended.
    wait_for(lambda: memcached_clients(fresh_memcached) == 0)


def _close_while_loading(
    server: ServerProcess, store: RedisStore, key: str, started: Callable[[], bool]
) -> list[object]:
    """``store.load(key)`` in a thread while the server is stopped; once
    ``started()`` says its connection is taken, and a moment later (its
    command or handshake on its way), ``store.close()``. What it loaded."""
    loaded: list[object] = []
    server.pause()
    try:
        request = threading.Thread(target=lambda: loaded.append(store.load(key)))
        request.start()
        wait_for(started)
        time.sleep(0.1)
        store.close()
    finally:
        server.resume()
    request.join()
    return loaded


def test_redis_close_lets_a_command_in_flight_end(fresh_redis: ServerProcess) -> None:
    """As above for the Redis store: the request's command completes (it
    raised ValueError, "I/O operation on closed file", not even
    StoreUnavailable), and its connection is closed as it comes back."""
    store = RedisStore(fresh_redis.url, socket_timeout=10)
    key = generate_key()
    store.create(key, b"x", later())  # one pooled connection
    pool = store._client.connection_pool
    loaded = _close_while_loading(
        fresh_redis, store, key, lambda: pool.pool.qsize() < pool.max_connections
    )
    assert [getattr(record, "payload", None) for record in loaded] == [b"x"]
    assert all(connection._sock is None for connection in pool._connections)


def test_redis_close_also_closes_a_connection_still_connecting(
    fresh_redis: ServerProcess,
) -> None:
    """As above, for a connection the request was still opening when
    ``close()`` ran (the pool had none idle: the store's first request, a
    burst): redis-py's handshake waits for the server's reply. It came back
    marked as taken after ``close()``, and stayed open in the pool."""
    store = RedisStore(fresh_redis.url, socket_timeout=10)
    key = generate_key()
    pool = store._client.connection_pool
    loaded = _close_while_loading(
        fresh_redis, store, key, lambda: bool(pool._connections)
    )
    assert loaded == [None]
    assert all(connection._sock is None for connection in pool._connections)


def test_sql_close_also_closes_a_connection_in_use(tmp_path: Path) -> None:
    """As above for the SQL store: a statement waiting for the database
    while ``close()`` runs has its connection closed when it ends."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLStore(f"sqlite:///{path}")
    key = generate_key()
    store.create(key, b"x", later())  # one pooled connection
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # the store's DELETE waits for it
        request = threading.Thread(target=store.delete, args=(key,))
        request.start()
        wait_for(lambda: not store._runner._idle)  # taken by the DELETE
        store.close()
        blocker.execute("COMMIT")
        request.join()
        rows = blocker.execute("SELECT count(*) FROM wsgisession_sessions")
        assert rows.fetchone() == (0,)  # the DELETE went through
    finally:
        blocker.close()
    assert open_descriptors(str(path)) == 0


@pytest.mark.usefixtures("young_heap")  # only this test's objects are collected
def test_sqlite_connections_of_ended_threads_close_with_the_collector_off(
    tmp_path: Path,
) -> None:
    """A server that starts a thread per request, or replaces its threads,
    in an app that turns the cyclic collector off (``gc.disable()``, as some
    gunicorn tunings do): each thread's connection closes as the thread
    ends. On Python 3.11 a ``sqlite3.Connection`` refers to itself through
    its statement cache, so it waited for a collection, holding the database
    and its ``-wal`` open: with none, two descriptors a request, until the
    process ran out of them and every request failed."""
    path = tmp_path / "sessions.sqlite3"
    middleware = SessionMiddleware(increment_app, store=SQLiteStore(path))
    cookie = new_session(middleware)  # the main thread's connection stays open
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            request = threading.Thread(target=call, args=(middleware, "", cookie))
            request.start()
            request.join()
        held = open_descriptors(str(path)) + open_descriptors(f"{path}-wal")
        status, _ = get(middleware, "", cookie)
    finally:
        gc.enable()
        middleware.close()
    assert status.startswith("200")
    # The main thread's two, and one SQLite keeps for the next connection
    # to reuse while another holds a lock on the file.
    assert held <= 4
    db = sqlite3.connect(path)
    try:
        (payload,) = db.execute("SELECT payload FROM wsgisession_sessions").fetchone()
    finally:
        db.close()
    assert b'"counter":102' in payload  # every request saved
    assert open_descriptors(str(path)) == 0


def test_sqlite_descriptors_kept_after_bursts_do_not_grow(tmp_path: Path) -> None:
    """A thread-per-request server under bursts: a connection closed while
    another of the process holds a lock on the file (in WAL mode each open
    connection holds one) leaves its descriptor of the database to SQLite,
    which cannot close it without dropping the other's lock, and hands it to
    the next connection opened. So at most as many stay open as connections
    were open at once (statements running at once: connections are pooled),
    reused by each burst, never more with more bursts; close() lets them
    all go."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    store.load(generate_key())  # the main thread's connection stays open
    burst = 12
    barrier = threading.Barrier(burst)

    def request() -> None:
        store.create(generate_key(), b"x", later())
        barrier.wait(timeout=30)  # all the burst's connections open at once

    kept = []
    for _ in range(3):
        threads = [threading.Thread(target=request) for _ in range(burst)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gc.collect()
        kept.append(open_descriptors(str(path)))
    # The pool's idle ones and those SQLite keeps, the same each burst.
    assert max(kept) <= burst + 1
    store.close()
    assert open_descriptors(str(path)) == 0
