"""The three views of a session's end agree on every store: the cookie's
``Max-Age``, the record the store keeps, and what ``get_expiry_age()`` /
``get_expiry_date()`` tell the app, also when ``absolute_timeout`` ends
the session before its expiry setting would.

Time is moved with ``wsgisession.clock.use`` (the ``frozen_clock``
fixture); the servers are real.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, build_store, get, store_argument

from wsgisession import SessionMiddleware
from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

UTC = datetime.UTC
KINDS = [
    "memory",
    "file",
    "sqlite",
    "cookie",
    "memcached",
    "redis",
    "sql-postgresql",
    "sql-mariadb",
    "sql-sqlite",
    "memcached-pool",
    "redis-cluster",
]
SECRET = "expiry-agreement-secret-0123456789abcdef"
COOKIE_AGE = 3600
ABSOLUTE_TIMEOUT = 500


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "cookie":
        return SignedCookieStore(SECRET)
    return build_store(kind, store_argument(kind, request, tmp_path))


def _cookie(headers: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The session cookie's value and attributes."""
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    first, *rest = cookie.split(";")
    attributes = dict(part.strip().partition("=")[::2] for part in rest)
    return first.partition("=")[2], attributes


@pytest.mark.parametrize(
    ("expiry", "left"),
    [
        (None, 400),  # cookie_age (3600 s) cut by the absolute timeout
        (3000, 400),
        ("moment", 400),  # a moment 1000 s after the second request
        (0, 400),  # browser close: the record lives cookie_age, cut too
        (60, 60),  # ends before the absolute timeout: not cut
    ],
)
def test_the_getters_end_a_session_where_its_record_and_cookie_end(
    store: Store, frozen_clock: FakeClock, expiry: Any, left: int
) -> None:
    """With absolute_timeout, get_expiry_age() and get_expiry_date() ignored
    it: 100 s into a session that dies 500 s after its creation, they said
    3600 s (its cookie_age) while the cookie's Max-Age and the record said
    400, so an app showing "your session ends at ..." named a moment when
    the session was long dead."""
    frozen_clock.now = start = float(int(frozen_clock.now)) + 0.25
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["n"] = session.get("n", 0) + 1
        if session["n"] == 2:
            value = expiry
            if value == "moment":
                value = datetime.timedelta(seconds=1000)
            session.set_expiry(value)
            seen["age"] = session.get_expiry_age()
            seen["date"] = session.get_expiry_date()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(
        app, store, cookie_age=COOKIE_AGE, absolute_timeout=ABSOLUTE_TIMEOUT
    )
    _, headers = get(middleware)
    key, _ = _cookie(headers)
    frozen_clock.advance(100)
    _, headers = get(middleware, cookie=f"sessionid={key}")
    key, attributes = _cookie(headers)
    end = start + 100 + left
    assert seen["age"] == left
    assert seen["date"] == datetime.datetime.fromtimestamp(end, UTC)
    record = store.load(key)
    assert record is not None
    assert record.expires_at == pytest.approx(end, abs=1e-6)
    if expiry == 0:
        assert "Max-Age" not in attributes
    else:
        assert attributes["Max-Age"] == str(left)
    store.close()


USER_KINDS = [kind for kind in KINDS if kind != "cookie"]


@pytest.mark.parametrize("store", USER_KINDS, indirect=True)
def test_a_listed_session_ends_at_its_absolute_timeout(
    store: Store, frozen_clock: FakeClock
) -> None:
    """A session saved before the site set absolute_timeout keeps its
    record's expiry (two weeks on) until its next save, but it dies at its
    creation plus the timeout: user_sessions() listed it as expiring two
    weeks on, the date a "your devices" page shows."""
    frozen_clock.now = start = float(int(frozen_clock.now)) + 0.25
    with SessionMiddleware(_counter_app, store) as before:  # no timeout yet
        session = before.open_session()
        session.bind_user("ann")
    frozen_clock.advance(100)
    middleware = SessionMiddleware(
        _counter_app, store, absolute_timeout=ABSOLUTE_TIMEOUT
    )
    (listed,) = middleware.user_sessions("ann")
    assert listed.expires_at == pytest.approx(start + ABSOLUTE_TIMEOUT, abs=1e-6)
    reloaded = middleware.open_session(session.session_key)
    assert reloaded.get_expiry_date().timestamp() == pytest.approx(
        listed.expires_at, abs=1e-6
    )
    middleware.close()


def _counter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
