"""How many connections a MemcachedStore opens to a server, and what a
server that refuses one more (past its ``-c``) is reported as."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from servers import ServerProcess

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore, memcached
from wsgisession.stores import _memcached_servers as memcached_servers

#: The lowest ``-c`` memcached starts with (one worker thread): below it,
#: it has no descriptors left for its own pipes.
SMALL_LIMIT = 64


@pytest.fixture
def small_memcached(tmp_path: Path) -> Iterator[ServerProcess]:
    """A private memcached that accepts at most :data:`SMALL_LIMIT` connections."""
    server = servers.memcached(tmp_path)
    server.argv += ["-c", str(SMALL_LIMIT), "-t", "1"]
    server.start()
    yield server
    server.stop(crash=True)


def _fill(server: ServerProcess) -> list[socket.socket]:
    """Raw connections to ``server`` until it refuses one: the ones it took."""
    taken: list[socket.socket] = []
    while len(taken) < 4 * SMALL_LIMIT:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(b"version\r\n")
        reply = sock.recv(200)
        if not reply.startswith(b"VERSION"):
            sock.close()
            assert reply.startswith(b"ERROR Too many open connections"), reply
            return taken
        taken.append(sock)
    raise AssertionError(f"{server} never refused a connection")


def _connections_opened(server: ServerProcess) -> int:
    """How many connections ``server`` has accepted since it started."""
    client = Client((server.host, server.port), timeout=5)
    try:
        return int(client.stats()[b"total_connections"])
    finally:
        client.close()


@pytest.mark.slow
def test_a_refused_connection_is_reported_as_the_servers_limit(
    small_memcached: ServerProcess,
) -> None:
    """Past its ``-c`` memcached answers a new connection ``ERROR Too many
    open connections`` and closes it: pymemcache read that as the reply to
    the first command, and the store reported
    ``MemcacheUnknownCommandError: b'gets'``. The server is up: it does not
    count as down (which would fail other requests at once)."""
    store = MemcachedStore(small_memcached.address)
    taken = _fill(small_memcached)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.load(generate_key())
        assert "memcached refused the connection: too many open connections" in str(
            raised.value
        )
        assert "(its -c limit)" in str(raised.value)
        assert not store._servers[0].down
    finally:
        for sock in taken:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the server counts the closes as its thread reads them
        try:
            assert store.load(generate_key()) is None
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "still refused"
            time.sleep(0.01)
    store.close()


def test_concurrent_commands_share_at_most_the_pools_connections(
    clean_memcached: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More concurrent commands than the pool's connections wait for one to
    come back instead of opening more: all succeed over the cap's few."""
    monkeypatch.setattr(memcached_servers, "MAX_CONNECTIONS", 3, raising=False)
    store = MemcachedStore(clean_memcached.address)
    opened_before = _connections_opened(clean_memcached)
    threads = 40
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def request() -> None:
        barrier.wait()
        try:
            for _ in range(5):
                store.create(generate_key(), b"x", time.time() + 60)
        except BaseException as exc:  # noqa: BLE001 - counted
            failures.append(exc)

    _all_at_once([threading.Thread(target=request) for _ in range(threads)])
    try:
        assert failures == []
        # The server's count (the reader's own included, and leeway for a
        # reconnection under load): 38-40 with no bound.
        assert _connections_opened(clean_memcached) - opened_before < 10
        assert store._servers[0]._slots.made <= 3
    finally:
        store.close()


def test_a_command_that_waits_too_long_for_a_connection_is_unavailable(
    clean_memcached: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection held for longer than the pool's wait: the command
    raises ``StoreUnavailable`` after that wait, not later, not never."""
    monkeypatch.setattr(memcached_servers, "MAX_CONNECTIONS", 1, raising=False)
    monkeypatch.setattr(memcached_servers, "POOL_WAIT", 0.1, raising=False)
    store = MemcachedStore(clean_memcached.address)
    (server,) = store._servers
    try:
        with server.held() as run:
            assert run("gets", "k") == (None, None)
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match="stayed in use for 0.1 s"):
                store.load(generate_key())
            assert 0.1 <= time.monotonic() - start < 2
            assert not server.down
        assert store.load(generate_key()) is None  # given back: usable again
    finally:
        store.close()


def test_writers_of_one_session_that_conflicted_take_turns(
    clean_memcached: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty requests of one session that loaded it at once and write it
    back at once: one wins, and the nineteen that conflicted read and write
    again one at a time, so each needs a single attempt more. Fighting
    instead, each won one write in nineteen: under a gevent worker's
    thousand requests, hundreds ran out of attempts ("too much contention")
    with none but this process's writers."""
    monkeypatch.setattr(memcached, "MAX_ATTEMPTS", 2)
    store = MemcachedStore(clean_memcached.address)
    key = generate_key()
    assert store.create(key, b"", time.time() + 60) == key
    threads = 20
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def request(number: int) -> None:
        loaded = store.load(key)
        barrier.wait()
        try:
            store.update(
                key,
                lambda current: ((current or b"") + b"%d," % number, time.time() + 60),
                loaded,
            )
        except BaseException as exc:  # noqa: BLE001 - counted
            failures.append(exc)

    _all_at_once([threading.Thread(target=request, args=(n,)) for n in range(threads)])
    try:
        assert failures == []
        record = store.load(key)
        assert record is not None
        assert sorted(record.payload.split(b",")[:-1]) == sorted(
            b"%d" % n for n in range(threads)
        )
    finally:
        store.close()


def _all_at_once(threads: list[threading.Thread]) -> None:
    """Start ``threads``, then wait for every one of them to end."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
