"""Store outages seen through the middleware, with real servers, files and locks.

A request that touches the session while its store is down gets
``StoreUnavailable`` out of the app (the framework answers 500); a request
that does not touch it is served; once the store is back the same
middleware works again. No outage ever shows up as a silently empty
session that a later save would write over the real data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key
from wsgisession.stores import FileStore, MemcachedStore, RedisStore, SQLiteStore
from wsgisession.stores.base import Store

Environ = dict[str, Any]


class Router:
    """``/incr`` counts, ``/read`` shows the count, ``/plain`` never touches the
    session, ``/incr-then-stop`` counts and takes the store's server down
    before the response (so the save hits the outage)."""

    def __init__(self) -> None:
        self.stop: Callable[[], None] = lambda: None

    def __call__(self, environ: Environ, start_response: Callable[..., Any]):
        path = environ["PATH_INFO"]
        body = "plain"
        if path != "/plain":
            session = environ["wsgisession"]
            if path.startswith("/incr"):
                session["n"] = session.get("n", 0) + 1
            body = str(session.get("n"))
        if path == "/incr-then-stop":
            self.stop()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]


def client_for(store: Store) -> tuple[webtest.TestApp, Router]:
    router = Router()
    return webtest.TestApp(SessionMiddleware(router, store=store)), router


def twin(client: webtest.TestApp) -> webtest.TestApp:
    """Another browser on the same middleware, without cookies."""
    return webtest.TestApp(client.app)


# -- memcached and Redis stopped mid-run ----------------------------------------


def network_store(kind: str, server: ServerProcess) -> Store:
    if kind == "memcached":
        return MemcachedStore([server.address], connect_timeout=0.5, timeout=1.0)
    return RedisStore(server.url, socket_timeout=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memcached", "redis"])
def test_server_stopped_and_restarted(kind: str, request: pytest.FixtureRequest):
    server: ServerProcess = request.getfixturevalue(f"fresh_{kind}")
    client, _router = client_for(network_store(kind, server))
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"

    server.stop()
    with pytest.raises(StoreUnavailable):
        client.get("/read")
    with pytest.raises(StoreUnavailable):
        client.get("/incr")
    assert client.get("/plain").text == "plain"  # untouched: never reaches the store
    newcomer = twin(client)
    assert newcomer.get("/read").text == "None"  # no cookie: nothing to load
    with pytest.raises(StoreUnavailable):
        newcomer.get("/incr")

    server.start()  # the data is gone (no persistence); the middleware is not rebuilt
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"
    assert newcomer.get("/incr").text == "1"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memcached", "redis"])
def test_server_stops_between_load_and_save(kind: str, request: pytest.FixtureRequest):
    server: ServerProcess = request.getfixturevalue(f"fresh_{kind}")
    client, router = client_for(network_store(kind, server))
    assert client.get("/incr").text == "1"
    router.stop = server.stop
    with pytest.raises(StoreUnavailable):
        client.get("/incr-then-stop")
    router.stop = lambda: None
    server.start()
    assert client.get("/incr").text == "1"


# -- SQLite locked by another process -------------------------------------------


@pytest.fixture
def exclusive_lock(tmp_path: Path) -> Iterator[Callable[[Path], Callable[[], None]]]:
    """Start a process holding ``BEGIN EXCLUSIVE`` on a database; returns release()."""
    holders: list[subprocess.Popen[str]] = []
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )

    def hold(path: Path) -> Callable[[], None]:
        holder = subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"

        def release() -> None:
            assert holder.stdin is not None
            holder.stdin.close()
            assert holder.wait(timeout=10) == 0

        return release

    yield hold
    for holder in holders:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.mark.slow  # Python subprocesses hold the lock
def test_sqlite_locked_by_another_process(
    tmp_path: Path, exclusive_lock: Callable[[Path], Callable[[], None]]
) -> None:
    path = tmp_path / "sessions.sqlite3"
    client, _router = client_for(SQLiteStore(path, busy_timeout=0.2))
    for expected in range(1, 6):
        assert client.get("/incr").text == str(expected)

    release = exclusive_lock(path)
    # WAL: readers still see the committed data, never an empty session.
    assert client.get("/read").text == "5"
    with pytest.raises(StoreUnavailable):
        client.get("/incr")
    with pytest.raises(StoreUnavailable):
        twin(client).get("/incr")
    assert client.get("/plain").text == "plain"
    release()

    assert client.get("/read").text == "5"  # the failed saves wrote nothing
    assert client.get("/incr").text == "6"
    assert twin(client).get("/incr").text == "1"


# -- the file store's directory unusable ----------------------------------------


def shard_of(client: webtest.TestApp) -> str:
    return storage_key(client.cookies["sessionid"])[:2]


def two_sessions_in_different_shards(
    store: FileStore,
) -> tuple[webtest.TestApp, webtest.TestApp]:
    first, _ = client_for(store)
    assert first.get("/incr").text == "1"
    while True:
        second = twin(first)
        assert second.get("/incr").text == "1"
        if shard_of(second) != shard_of(first):
            return first, second


def test_file_store_shard_replaced_by_a_file(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    store = FileStore(root)
    store.lock_timeout = 2.0
    broken, healthy = two_sessions_in_different_shards(store)
    bad, good = root / shard_of(broken), shard_of(healthy)
    aside = tmp_path / "aside"
    bad.rename(aside)
    bad.write_text("not a directory")

    with pytest.raises(StoreUnavailable):
        broken.get("/read")  # unreadable: an error, not an empty session
    with pytest.raises(StoreUnavailable):
        broken.get("/incr")
    assert healthy.get("/read").text == "1"
    assert healthy.get("/incr").text == "2"

    # Every shard but the healthy one unusable: new sessions cannot be written.
    for name in (f"{i:02x}" for i in range(256)):
        if name != good and not (root / name).exists():
            (root / name).write_text("not a directory")
    outcomes = []
    for _ in range(5):
        newcomer = twin(healthy)
        try:
            newcomer.get("/incr")
            outcomes.append(shard_of(newcomer))
        except StoreUnavailable:
            outcomes.append("unavailable")
    assert "unavailable" in outcomes
    assert set(outcomes) <= {"unavailable", good}
    assert healthy.get("/incr").text == "3"

    for name in (f"{i:02x}" for i in range(256)):
        if (root / name).is_file():
            (root / name).unlink()
    aside.rename(bad)
    assert broken.get("/read").text == "1"  # back, the same middleware
    assert broken.get("/incr").text == "2"


def test_file_store_lock_directory_unusable(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    store = FileStore(root)
    store.lock_timeout = 2.0
    client, _ = client_for(store)
    assert client.get("/incr").text == "1"
    other = twin(client)
    assert other.get("/incr").text == "1"
    assert other.get("/incr").text == "2"  # a save: its shard's lock file exists

    shutil.rmtree(root / ".locks")
    (root / ".locks").write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        client.get("/incr")
    # Reads take no lock, and neither does a new session (its file is made
    # with O_EXCL at a name that must be free).
    assert twin(client).get("/incr").text == "1"
    assert client.get("/read").text == "1"
    assert other.get("/read").text == "2"

    os.unlink(root / ".locks")
    assert client.get("/incr").text == "2"
    assert other.get("/incr").text == "3"


def test_file_store_under_a_regular_file(tmp_path: Path) -> None:
    """A path that can never be a directory fails at construction, loudly."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    with pytest.raises(StoreUnavailable):
        FileStore(blocker / "sessions")
