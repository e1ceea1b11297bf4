"""A "cookie sandwich" does not hide the session cookie, not even a ``__Host-`` one.

A sibling subdomain cannot set or shadow ``__Host-sessionid``, but it can
set ordinary cookies for the parent domain. Browsers (Chrome, Firefox)
accept a double quote inside a cookie value and send cookies longer path
first, then oldest first, joined by ``"; "``. With ``a`` (value ``"x``) on
a longer path and ``b`` (value ``y"``) on ``/``, set after the session
cookie, the victim's browser sends::

    Cookie: a="x; __Host-sessionid=<real>; b=y"

RFC 6265 forbids ``;`` inside a cookie value, quoted or not, and browsers
split on it. werkzeug's parser, which reads any header with a quote in it,
takes ``"x; __Host-sessionid=<real>; b=y"`` as one quoted value of ``a``;
so such a header is now read pair by pair. Before, the real session was
not seen at all: the victim looked logged out, and the next write replaced
the real session cookie with a fresh one (docs/security.rst says a
``__Host-`` name is the complete defence against cookie tossing).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import call, increment_app

from wsgisession import SessionMiddleware
from wsgisession.config import Settings
from wsgisession.cookie_header import cookie_values
from wsgisession.keys import generate_key
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Store

NAME = "__Host-sessionid"
SECRET = "sandwich-test-secret-0123456789abcdef"
SETTINGS = Settings(cookie_name=NAME, cookie_secure=True)


def read_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    user = environ["wsgisession"].get("user")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(user).encode()]


def sandwich(real: str) -> str:
    """The header the victim's browser sends once the attacker set a and b."""
    return f'a="x; {NAME}={real}; b=y"'


def logged_in(app: SessionMiddleware) -> str:
    session = app.open_session()
    session.update(user="victim", counter=1)
    session.save()
    assert session.session_key is not None
    return session.session_key


@pytest.fixture(params=["memory", "cookie"])
def store(request: pytest.FixtureRequest) -> Store:
    return MemoryStore() if request.param == "memory" else SignedCookieStore(SECRET)


def test_quoted_neighbours_do_not_hide_the_session_cookie() -> None:
    real = generate_key()
    assert cookie_values(sandwich(real), NAME) == [real]


def test_sandwich_does_not_log_the_victim_out(store: Store) -> None:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = read_app(environ, start_response)
        seen.extend(body)
        return body

    middleware = SessionMiddleware(app, store=store, settings=SETTINGS)
    real = logged_in(middleware)
    call(middleware, "", sandwich(real))
    assert seen == [b"victim"], "the real __Host- session must load"


def test_sandwich_does_not_replace_the_session_on_write(store: Store) -> None:
    middleware = SessionMiddleware(increment_app, store=store, settings=SETTINGS)
    real = logged_in(middleware)
    headers = call(middleware, "counter", sandwich(real))
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    session = middleware.open_session(value)
    assert session.get("user") == "victim", "the write went to a fresh session"
    assert session["counter"] == 2
