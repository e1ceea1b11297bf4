"""A copy of a signed cookie kept after logout: what bounds its use.

The cookie store cannot revoke a cookie, and every save signs the session
again with a new expiry: a thief who keeps visiting pages that save the
session keeps a stolen copy alive. Only ``absolute_timeout`` ends it, which
is why ``wsgisession check`` warns about a cookie store without one.
"""

from __future__ import annotations

import pytest
import webtest
from helpers import FakeClock

from wsgisession import SessionMiddleware
from wsgisession.stores import SignedCookieStore

SECRET = "cookie-store-replay-secret-4f0c9a1e27b3d865"
DAY = 86400
#: The thief's visits: one every 13 days (inside cookie_age), 30 of them.
VISIT_EVERY, VISITS = 13 * DAY, 30


def login_app(environ, start_response):
    """``?login`` logs ann in, ``?logout`` flushes; any other page saves a hit.
    The body is the logged-in user."""
    session = environ["wsgisession"]
    query = environ["QUERY_STRING"]
    if query == "login":
        session.cycle_key()
        session["user"] = "ann"
    elif query == "logout":
        session.flush()
    else:
        session["hits"] = session.get("hits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("user")).encode()]


def visit(middleware: SessionMiddleware, query: str, value: str | None = None):
    """One request from a client holding ``value`` (no cookie jar kept)."""
    headers = {"Cookie": f"sessionid={value}"} if value else {}
    return webtest.TestApp(middleware).get(f"/?{query}", headers=headers)


def days_a_kept_copy_serves(middleware: SessionMiddleware, clock: FakeClock) -> int:
    """How many days a copy of ann's cookie taken at login still logs its
    holder in after ann logged out, used every 13 days (at most 390)."""
    value = visit(middleware, "login").headers["Set-Cookie"].split(";")[0][10:]
    assert visit(middleware, "logout", value).text == "None"
    for number in range(VISITS):
        clock.advance(VISIT_EVERY)
        response = visit(middleware, "page", value)
        if response.text != "ann":
            return number * VISIT_EVERY // DAY
        value = response.headers["Set-Cookie"].split(";")[0][10:]
    return VISITS * VISIT_EVERY // DAY


@pytest.mark.parametrize(("absolute_timeout", "days"), [(None, 390), (30 * DAY, 26)])
def test_only_absolute_timeout_ends_a_copy_kept_in_use(
    frozen_clock: FakeClock, absolute_timeout: int | None, days: int
) -> None:
    middleware = SessionMiddleware(
        login_app,
        store=SignedCookieStore(SECRET),
        cookie_age=14 * DAY,
        absolute_timeout=absolute_timeout,
    )
    assert days_a_kept_copy_serves(middleware, frozen_clock) == days
