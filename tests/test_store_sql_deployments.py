"""SQLStore in set-ups real deployments have: a pooler in transaction mode in
front of PostgreSQL, a MariaDB whose ``max_allowed_packet`` is smaller than
a session, a server that ends idle connections.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import servers
from servers import DatabaseServer, ServerProcess
from sql_support import sql_url
from sqlalchemy import event

from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.stores import SQLStore
from wsgisession.stores.base import now

#: What a MariaDB of the test gets as its max_allowed_packet (1 MiB).
SMALL_PACKET = 1 << 20


@pytest.fixture
def bouncer(
    postgresql_server: DatabaseServer, tmp_path: Path
) -> Iterator[ServerProcess]:
    try:
        server = servers.pgbouncer(tmp_path, postgresql_server)
    except servers.MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    yield server
    server.remove()


def saves(store: SQLStore, rounds: int) -> int:
    """Create, load and update ``rounds`` sessions; how many came back changed."""
    changed = 0
    for _ in range(rounds):
        key = secrets.token_urlsafe(32)
        store.create(key, b"first", 2e9)
        store.update(key, lambda _current: (b"second", 2e9), store.load(key))
        loaded = store.load(key)
        changed += loaded is not None and loaded.payload == b"second"
    return changed


def test_a_pooler_in_transaction_mode_with_prepare_threshold_none(
    bouncer: ServerProcess,
) -> None:
    """psycopg prepares a statement run five times on the server connection
    of that moment; behind PgBouncer in transaction mode the next run goes
    to another, where it does not exist (or another one of its name does).
    ``?prepare_threshold=none`` (psycopg's own argument) turns that off: it
    reached psycopg as the text "none", and the first load raised TypeError."""
    url = f"{bouncer.url}?prepare_threshold=none"
    with SQLStore(url, table="pooled_sessions") as store:
        store.create_tables()
        with ThreadPoolExecutor(4) as pool:
            done = list(pool.map(saves, [store] * 4, [20] * 4))
    assert done == [20] * 4


@pytest.mark.parametrize("value", ["soon", "-1", "1.5", "%C2%B2"])
def test_a_bad_prepare_threshold_is_a_config_error(value: str) -> None:
    """``%C2%B2`` is "²", a digit to ``str.isdigit()`` but not to ``int()``:
    it raised ValueError from int() instead of naming the option."""
    with pytest.raises(ConfigError, match="prepare_threshold"):
        SQLStore(f"postgresql+psycopg://app@127.0.0.1:1/db?prepare_threshold={value}")


@pytest.fixture
def small_packet(mariadb_server: DatabaseServer) -> Iterator[str]:
    """The MariaDB's URL, its max_allowed_packet 1 MiB for the connections
    opened meanwhile (as a DBA may set it; MySQL 5.7's default is 4 MiB)."""
    root = servers.mariadb_root(mariadb_server)
    try:
        with root.cursor() as cursor:
            cursor.execute("SELECT @@global.max_allowed_packet")
            (before,) = cursor.fetchone()
            cursor.execute(f"SET GLOBAL max_allowed_packet = {SMALL_PACKET}")
        try:
            yield mariadb_server.url
        finally:
            with root.cursor() as cursor:
                cursor.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")
    finally:
        root.close()


def test_a_session_a_save_could_not_send_is_refused_when_created(
    small_packet: str,
) -> None:
    """A save sends the session twice (the new payload and the one it
    replaces), each as hex: a session of 300 KB was created, and then
    every save of it made the server close the connection ("MySQL server
    has gone away"), and the store drop its whole pool."""
    key = secrets.token_urlsafe(32)
    with SQLStore(small_packet, table="packet_sessions") as store:
        with pytest.raises(StoreUnavailable, match="max_allowed_packet"):
            store.create(key, b"x" * 300_000, 2e9)
        assert store.load(key) is None
        assert store.create(key, b"x" * 200_000, 2e9) == key
        loaded = store.load(key)
        store.update(key, lambda current: (current + b"y", 2e9), loaded)
        assert store.load(key).payload == b"x" * 200_000 + b"y"  # type: ignore[union-attr]


def test_a_session_grown_past_what_a_later_save_sends_is_refused(
    small_packet: str,
) -> None:
    """A save that grew a small session to 400 KB was written (it sent 400 KB
    and the small copy it replaced: under the 1 MiB packet); every later
    save of the session, a change of one byte or the new key of a login,
    had to send 400 KB twice and was refused: the user's every request
    failed until the session expired. The growth is refused instead."""
    key = secrets.token_urlsafe(32)
    with SQLStore(small_packet, table="packet_sessions") as store:
        store.create(key, b"small", 2e9)
        with pytest.raises(StoreUnavailable, match="max_allowed_packet"):
            store.update(key, lambda _current: (b"x" * 400_000, 2e9), store.load(key))
        assert store.load(key).payload == b"small"  # type: ignore[union-attr]
        store.update(key, lambda _current: (b"x" * 200_000, 2e9), store.load(key))
        store.update(key, lambda current: (current + b"y", 2e9), store.load(key))
        assert store.load(key).payload == b"x" * 200_000 + b"y"  # type: ignore[union-attr]


def connections_made(server: DatabaseServer) -> int:
    """How many connections the server has accepted (this look included)."""
    root = servers.mariadb_root(server)
    try:
        with root.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            return int(cursor.fetchone()[1])
    finally:
        root.close()


def test_a_session_grown_past_max_allowed_packet_is_refused_by_name(
    small_packet: str, mariadb_server: DatabaseServer
) -> None:
    """Sent, it made the server close the connection, after a reply naming
    the packet or none ("MySQL server has gone away"): the store kept the
    closed connection for the next request, or took it for a restart, let
    go of every pooled connection and sent the session again."""
    key = secrets.token_urlsafe(32)
    with SQLStore(small_packet, table="packet_sessions") as store:
        store.create(key, b"small", 2e9)
        loaded = store.load(key)
        before = connections_made(mariadb_server)
        with pytest.raises(StoreUnavailable, match="max_allowed_packet") as caught:
            store.update(key, lambda _current: (b"x" * 600_000, 2e9), loaded)
        assert "gone away" not in str(caught.value)
        assert store.load(key).payload == b"small"  # type: ignore[union-attr]
        assert connections_made(mariadb_server) == before + 1  # the look's own


def test_a_session_fits_once_max_allowed_packet_is_raised(
    small_packet: str, mariadb_server: DatabaseServer
) -> None:
    """The refusal says "raise max_allowed_packet": a DBA does, with SET
    GLOBAL, and the server takes the session; the store read the limit once,
    at first use, and went on refusing it until the app was restarted."""
    key = secrets.token_urlsafe(32)
    with SQLStore(small_packet, table="packet_sessions") as store:
        with pytest.raises(StoreUnavailable, match="max_allowed_packet"):
            store.create(key, b"x" * 300_000, 2e9)
        root = servers.mariadb_root(mariadb_server)
        try:
            with root.cursor() as cursor:
                cursor.execute(f"SET GLOBAL max_allowed_packet = {4 * SMALL_PACKET}")
        finally:
            root.close()
        assert store.create(key, b"x" * 300_000, 2e9) == key
        loaded = store.load(key)
        store.update(key, lambda current: (current + b"y", 2e9), loaded)
        assert store.load(key).payload == b"x" * 300_000 + b"y"  # type: ignore[union-attr]


def test_a_connection_in_use_when_max_allowed_packet_rose_is_let_go(
    small_packet: str, mariadb_server: DatabaseServer
) -> None:
    """Once the store saw the raised max_allowed_packet it let go of its idle
    connections, held to the old one; a connection a request had in use at
    that moment went back to the idle ones when it ended, and the next large
    session sent on it made the server close it: a save failed."""
    keys = [secrets.token_urlsafe(32) for _ in range(3)]
    with SQLStore(small_packet, table="packet_sessions") as store:
        assert store.create(keys[0], b"small", 2e9) == keys[0]
        with store._runner.cursor():  # a request in flight, on an old connection
            root = servers.mariadb_root(mariadb_server)
            try:
                with root.cursor() as cursor:
                    cursor.execute(
                        f"SET GLOBAL max_allowed_packet = {4 * SMALL_PACKET}"
                    )
            finally:
                root.close()
            assert store.create(keys[1], b"x" * 300_000, 2e9) == keys[1]
        assert store.create(keys[2], b"x" * 300_000, 2e9) == keys[2]
        loaded = store.load(keys[2])
        store.update(keys[2], lambda current: (current + b"y", 2e9), loaded)
        assert store.load(keys[2]).payload == b"x" * 300_000 + b"y"  # type: ignore[union-attr]


def test_a_connection_opening_while_max_allowed_packet_rose_is_let_go(
    small_packet: str, mariadb_server: DatabaseServer
) -> None:
    """A request that was opening a connection (connected, under the old
    limit) while another saw the raised max_allowed_packet and renewed the
    connections: it counted as one opened after the renewal and was kept
    for later requests, held to the old limit. A large session sent on it
    then failed to save (1153, "Got a packet bigger than
    'max_allowed_packet' bytes"), or made the server close it and the store
    drop all its connections, depending on how far the send got."""
    keys = [secrets.token_urlsafe(32) for _ in range(2)]
    connected, renewed = threading.Event(), threading.Event()
    armed = [True]

    def hold_first_connection(_dbapi: Any, _record: Any) -> None:
        if armed[0]:  # connected under the old limit: wait for the renewal
            armed[0] = False
            connected.set()
            renewed.wait(10)

    with SQLStore(small_packet, table="packet_sessions") as store:
        assert store.create(keys[0], b"small", 2e9) == keys[0]
        with store._runner.cursor():  # so the other request opens its own
            event.listen(store._base, "connect", hold_first_connection)
            with ThreadPoolExecutor(1) as pool:
                other = pool.submit(store.load, keys[0])
                assert connected.wait(10)
                root = servers.mariadb_root(mariadb_server)
                try:
                    with root.cursor() as cursor:
                        cursor.execute(
                            f"SET GLOBAL max_allowed_packet = {4 * SMALL_PACKET}"
                        )
                finally:
                    root.close()
                assert store.create(keys[1], b"x" * 300_000, 2e9) == keys[1]
                renewed.set()
                assert other.result(10) is not None
        kept = []
        for cursor in (slot.cursor for slot in store._runner._idle):
            cursor.raw.execute("SELECT @@session.max_allowed_packet")
            kept.append(cursor.raw.fetchone()[0])
        assert kept and set(kept) == {4 * SMALL_PACKET}


#: Per-connection settings that make the server end a connection idle for 1 s
#: (MariaDB's ``wait_timeout``, PostgreSQL's ``idle_session_timeout``).
IDLE_TIMEOUT_QUERY = {
    "sql-mariadb": "?init_command=SET+SESSION+wait_timeout%3D1",
    "sql-postgresql": "?options=-c+idle_session_timeout%3D1000",
}


@pytest.mark.parametrize("kind", sorted(IDLE_TIMEOUT_QUERY))
def test_a_sweep_after_an_idle_timeout_runs_on_a_new_connection(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """docs/stores.rst: a pooled connection the server dropped (a restart, an
    idle timeout) is replaced and the statement retried once. A sweep's
    connection waited in the engine's pool for ``cleanup_interval``; a
    server that ends idle connections sooner had ended it, and the sweep
    failed (a WARNING with a traceback, expired rows left) every other time."""
    url = sql_url(kind, request, tmp_path) + IDLE_TIMEOUT_QUERY[kind]
    with SQLStore(url) as store:
        store.create(secrets.token_urlsafe(32), b"expiring", now() + 1)
        assert store.sweep_expired(100) == 0  # its connection back in the pool
        time.sleep(2.5)  # the server ends every connection of the store
        assert store.sweep_expired(100) == 1
