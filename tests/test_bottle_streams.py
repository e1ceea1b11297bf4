"""Bottle generator views: a body that changes the session after its
headers went out (Bottle sends a generator's chunks as they come, with no
``Content-Length``), where only a cookie could carry the change."""

from __future__ import annotations

from collections.abc import Iterator

import bottle
import pytest
import webtest
from helpers import fake_clock

from wsgisession import Session, SessionMiddleware
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Store

SECRET = "a-bottle-test-secret-of-32-bytes-or-more"
LATE_CHANGE = "session changed after the response headers were sent"


def session() -> Session:
    return bottle.request.environ["wsgisession"]  # type: ignore[no-any-return]


def make_client(store: Store) -> webtest.TestApp:
    app = bottle.Bottle()

    @app.get("/login")
    def login() -> str:
        session()["user"] = "ann"
        return "welcome"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session().get("user"))

    @app.get("/logout/<when>")
    def logout(when: str) -> Iterator[str]:
        if when == "before":
            session().flush()
        yield "Logging you out... "
        if when == "after":
            session().flush()
        yield "bye"

    return webtest.TestApp(SessionMiddleware(app, store=store))


def test_a_cookie_store_logout_after_the_headers_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cookie is the session: once the headers are out, nothing can end
    it, and the user stays logged in. That must not pass silently (as a
    change after the headers does not): docs/session.rst promises a WARNING."""
    client = make_client(SignedCookieStore(SECRET))
    client.get("/login")
    with caplog.at_level("WARNING", logger="wsgisession"):
        response = client.get("/logout/after")
    assert response.text == "Logging you out... bye"
    assert client.get("/whoami").text == "ann"  # cannot be helped...
    assert [r for r in caplog.records if LATE_CHANGE in r.getMessage()]  # ...but said


@pytest.mark.parametrize(
    "store",
    [pytest.param(MemoryStore(), id="memory"), pytest.param(None, id="cookie")],
)
def test_a_logout_before_the_first_chunk_deletes_the_cookie_quietly(
    store: Store | None, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(store or SignedCookieStore(SECRET))
    client.get("/login")
    with caplog.at_level("WARNING", logger="wsgisession"):
        response = client.get("/logout/before")
    assert response.headers["Set-Cookie"].startswith("sessionid=;")
    assert client.get("/whoami").text == "None"
    assert not [r for r in caplog.records if LATE_CHANGE in r.getMessage()]


def test_a_server_side_logout_after_the_headers_still_logs_out() -> None:
    client = make_client(MemoryStore())
    client.get("/login")
    client.get("/logout/after")
    assert client.get("/whoami").text == "None"


def test_an_expired_cookie_read_after_the_headers_is_no_lost_logout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A generator view that reads the session once its headers are out,
    for a visitor whose signed cookie has expired: nothing changed and
    nothing is lost (the cookie ends no session), yet it logged that a
    flush() after the headers could not be carried, for every such visit."""
    app = bottle.Bottle()

    @app.get("/login")
    def login() -> str:
        session()["user"] = "ann"
        return "welcome"

    @app.get("/feed")
    def feed() -> Iterator[str]:
        yield "Hello, "
        yield str(session().get("user", "guest"))

    store = SignedCookieStore(SECRET)
    client = webtest.TestApp(SessionMiddleware(app, store=store, cookie_age=60))
    with fake_clock() as clock:
        client.get("/login")
        clock.advance(120)
        with caplog.at_level("WARNING", logger="wsgisession"):
            response = client.get("/feed")
    assert response.text == "Hello, guest"
    assert not [r for r in caplog.records if LATE_CHANGE in r.getMessage()]
