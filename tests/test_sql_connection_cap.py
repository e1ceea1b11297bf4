"""SQLStore on PostgreSQL keeps at most ``MAX_OPEN`` connections open on an
engine it built, counted where the server counts them (``pg_stat_activity``):
the requests' connections and those of the sweeps and ``clear_expired()``
alike, since the cap is there to stay within what the server accepts."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import call, increment_app, later
from servers import DB_PASSWORD, DatabaseServer
from sql_support import TABLE, sql_url
from sqlalchemy import create_engine, text

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore
from wsgisession.stores._sqlrun import MAX_OPEN


def backends(url: str, name: str) -> int:
    """How many connections the server has open for ``application_name``."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"
            return int(conn.execute(text(query), {"n": name}).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def named(postgresql_server: DatabaseServer) -> tuple[str, str]:
    """A URL whose connections the server tells apart, and their name."""
    name = "wsgisession-cap-" + secrets.token_hex(4)
    return f"{postgresql_server.url}?application_name={name}", name


def test_the_middleware_sweeps_within_the_connections_of_requests(
    named: tuple[str, str], postgresql_server: DatabaseServer
) -> None:
    """Requests in flight hold all but one of the connections; a request
    saves, and its sweep runs: still no more than MAX_OPEN open."""
    url, name = named
    store = SQLStore(url, timeout=0.5)
    app = SessionMiddleware(increment_app, store=store)
    store.create(generate_key(), b"x", time.time() + 600)
    with contextlib.ExitStack() as in_flight:
        for _ in range(MAX_OPEN - 1):
            in_flight.enter_context(store._runner.cursor())
        call(app, "", None)  # saves a new session, then sweeps
        assert backends(postgresql_server.url, name) <= MAX_OPEN
    store.close()


def test_clear_expired_waits_for_a_connection_when_all_are_busy(
    named: tuple[str, str], postgresql_server: DatabaseServer
) -> None:
    """A cleanup while MAX_OPEN requests are in flight waits for one of their
    connections (then StoreUnavailable past ``timeout``) rather than
    opening one more."""
    url, name = named
    store = SQLStore(url, timeout=0.2)
    store.create_tables()
    with contextlib.ExitStack() as in_flight:
        for _ in range(MAX_OPEN):
            in_flight.enter_context(store._runner.cursor())
        with pytest.raises(StoreUnavailable, match="busy"):
            store.clear_expired()
        with pytest.raises(StoreUnavailable, match="busy"):
            store.sweep_expired(100)
        assert backends(postgresql_server.url, name) <= MAX_OPEN
    assert store.clear_expired() == 0  # the connections came back
    assert store.sweep_expired(100) == 0
    store.close()


@pytest.fixture
def capped_role(
    postgresql_server: DatabaseServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """The URL of a role that may have two connections open (``CONNECTION
    LIMIT 2``: the server's limit reached, for one role), with the rights an
    app's role has on the store's tables."""
    url = sql_url("sql-postgresql", request, tmp_path)
    name = "capped_" + secrets.token_hex(4)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        limit = f"LOGIN CONNECTION LIMIT 2 PASSWORD '{DB_PASSWORD}'"
        conn.execute(text(f"CREATE ROLE {name} {limit}"))
        for table in (TABLE, f"{TABLE}_locks"):
            conn.execute(
                text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {name}")
            )
    yield url.replace("//postgres:", f"//{name}:")
    with admin.connect() as conn:
        conn.execute(text(f"DROP OWNED BY {name}"))
        conn.execute(text(f"DROP ROLE {name}"))
    admin.dispose()


def test_a_request_waits_for_a_connection_the_server_has_no_room_for(
    capped_role: str,
) -> None:
    """Under MAX_OPEN, the server refuses one more connection (``too many
    connections``): a request waits for one of the store's own to come back,
    as it does at MAX_OPEN, rather than fail at once while they are busy."""
    store, key = SQLStore(capped_role, timeout=2.0), generate_key()
    store.create(key, b"kept", later())
    in_flight = contextlib.ExitStack()
    for _ in range(2):  # two requests hold the role's two connections
        in_flight.enter_context(store._runner.cursor())
    ending = threading.Timer(0.3, in_flight.close)  # ... until they end
    ending.start()
    started = time.monotonic()
    try:
        record = store.load(key)  # StoreUnavailable: too many connections for role
    finally:
        ending.join()
    assert record is not None and record.payload == b"kept"
    assert 0.2 < time.monotonic() - started < 2.0
    store.close()


def test_a_server_with_no_room_and_no_connection_of_ours_fails_at_once(
    capped_role: str,
) -> None:
    """Nothing of the store's own to wait for: StoreUnavailable, named."""
    store = SQLStore(capped_role, timeout=2.0)
    blocker = SQLStore(capped_role, timeout=2.0)  # another process's two
    with blocker._runner.cursor(), blocker._runner.cursor():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="too many connections"):
            store.load(generate_key())
        assert time.monotonic() - started < 1.0
    blocker.close()
    store.close()


def test_a_request_refused_as_full_takes_the_room_another_client_leaves(
    capped_role: str,
) -> None:
    """Refused as full while a connection of its own is busy (a long
    request), a request asks the server again as it waits: another client
    leaving makes room long before that connection comes back."""
    store, key = SQLStore(capped_role, timeout=3.0), generate_key()
    store.create(key, b"kept", later())
    blocker = SQLStore(capped_role, timeout=3.0)  # another process's one
    in_flight = contextlib.ExitStack()
    in_flight.enter_context(store._runner.cursor())  # busy for the whole test
    leaving = contextlib.ExitStack()
    leaving.enter_context(blocker._runner.cursor())
    leaving.callback(blocker.close)  # ... and its connection closes
    gone = threading.Timer(0.3, leaving.close)  # as the other client's request ends
    gone.start()
    started = time.monotonic()
    try:
        record = store.load(key)  # StoreUnavailable after 3 s: too many connections
    finally:
        gone.join()
        in_flight.close()
    assert record is not None and record.payload == b"kept"
    assert time.monotonic() - started < 1.5  # not the whole timeout
    store.close()
