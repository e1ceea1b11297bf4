"""SQLStore on PostgreSQL keeps at most ``MAX_OPEN`` connections open on an
engine it built, counted where the server counts them (``pg_stat_activity``):
the requests' connections and those of the sweeps and ``clear_expired()``
alike, since the cap is there to stay within what the server accepts."""

from __future__ import annotations

import contextlib
import secrets
import time

import pytest
from helpers import call, increment_app
from servers import DatabaseServer
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
