"""A save or ``cycle_key()`` that meets its record expired since it was
loaded: the record is gone, on the SQL store as on the others.

Found by the session model (tests/test_session_model_stores.py): the SQL
store's conditional DELETE (the old record of a ``cycle_key()``, or a save
that ends the session) matched a row that had expired, so a session that
expired while its request ran was moved to a new, live key with its data,
and a session ended at once by ``set_expiry(-10)`` answered with a cookie
of its key instead of a deleting one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import build_store, fake_clock, get, store_argument
from sql_support import SQL_KINDS

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted

START = 1_700_000_000.0
KINDS = ["memory", "file", "sqlite", "redis", "memcached", *SQL_KINDS]


@pytest.mark.parametrize("move", ["cycle_key", "bind_user"])
@pytest.mark.parametrize("kind", KINDS)
def test_key_change_of_a_session_expired_while_loaded(
    kind: str, move: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The session ends: its data does not move to a new, live key."""
    store = build_store(kind, store_argument(kind, request, tmp_path))
    with (
        fake_clock(START) as clock,
        SessionMiddleware(
            lambda environ, start_response: [], store, cookie_age=100
        ) as middleware,
    ):
        saved = middleware.open_session()
        saved["user"] = "alice"
        saved.save()
        old_key = saved.session_key
        assert old_key is not None
        in_flight = middleware.open_session(old_key)
        assert dict(in_flight) == {"user": "alice"}
        clock.advance(101)  # expires while the request runs
        with pytest.raises(SessionInterrupted):
            if move == "cycle_key":
                in_flight.cycle_key()
            else:
                in_flight.bind_user("alice")
        assert dict(in_flight) == {}
        assert in_flight.session_key is None
        assert middleware.user_sessions("alice") == []


@pytest.mark.parametrize("kind", KINDS)
def test_new_session_ended_at_once_by_cycle_key_deletes_its_cookie(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """As a save that finds its record gone: a deleting cookie."""
    store = build_store(kind, store_argument(kind, request, tmp_path))

    def app(environ, start_response):
        session = environ["wsgisession"]
        session.set_expiry(-10)
        session.cycle_key()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with fake_clock(START), SessionMiddleware(app, store) as middleware:
        status, headers = get(middleware)
    cookies = [value for name, value in headers if name == "Set-Cookie"]
    assert status.startswith("200")
    assert len(cookies) == 1 and cookies[0].startswith("sessionid=;"), cookies
