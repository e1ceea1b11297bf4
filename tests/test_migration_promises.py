"""What ``docs/migrating.rst`` promises a user coming from Beaker or Flask.

Each test takes one concrete promise of that page and checks it against the
real framework (WebTest drives the apps): code written for Beaker that
keeps calling ``session.save()`` under ``environ_key = beaker.session``,
the cookie following the server's expiry on every save, and Flask's
``session.permanent`` as the page describes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flask
import session_flows as flows
import webtest
from helpers import FakeClock

from wsgisession import SessionMiddleware
from wsgisession.contrib.flask import init_app
from wsgisession.stores import MemoryStore

AGE = 3600


def beaker_style_app(seen: list[str | None]) -> Callable[..., Iterable[bytes]]:
    """A Beaker app left as it was: ``/login`` stores the user, every page
    calls ``save()`` as Beaker without ``auto`` needed; ``seen`` gets the
    session's key after each save."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ["beaker.session"]
        if environ["PATH_INFO"] == "/login":
            session["user"] = "ada"
        user = session.get("user")
        session.save()
        seen.append(session.session_key)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(user).encode()]

    return app


def beaker_client(store: MemoryStore, seen: list[str | None]) -> webtest.TestApp:
    middleware = SessionMiddleware(
        beaker_style_app(seen),
        store=store,
        cookie_age=AGE,
        environ_key="beaker.session",
    )
    return webtest.TestApp(middleware)


def test_an_explicit_save_of_a_session_only_read_resends_its_cookie(
    frozen_clock: FakeClock,
) -> None:
    """The cookie is re-sent on every save, "so the browser's expiry follows
    the server's": a save() that moves the server's expiry must move the
    browser's too, or the browser drops a cookie the server still honours."""
    store, seen = MemoryStore(), []
    client = beaker_client(store, seen)
    login = client.get("/login")
    assert f"Max-Age={AGE}" in flows.session_cookie(login)
    frozen_clock.advance(AGE - 600)
    response = client.get("/")
    assert response.text == "'ada'"
    assert store.load(seen[-1]) is not None
    header = flows.session_cookie(response)  # the save moved the expiry: re-sent
    assert f"Max-Age={AGE}" in header
    assert flows.cookie_value(response) == flows.cookie_value(login)


def test_an_explicit_save_of_a_new_empty_session_sets_its_cookie() -> None:
    """Beaker's save() of a new session sets its cookie; a record saved
    without one can never be reached again, and each cookieless request
    would leave one more in the store."""
    store, seen = MemoryStore(), []
    client = beaker_client(store, seen)
    first = client.get("/")
    key = seen[-1]
    assert key is not None and store.load(key) is not None
    assert flows.cookie_value(first) == key
    client.get("/")
    assert seen[-1] == key  # the same session, not one record per page


def test_flask_permanent_alone_is_not_kept_as_the_page_says() -> None:
    """``docs/migrating.rst``: ``permanent = True`` on a session with no data
    is not kept (Flask keeps it as ``_permanent``); set with the data, it is."""
    app = flask.Flask(__name__)
    init_app(app, store=MemoryStore())

    @app.get("/remember")
    def remember() -> str:
        flask.session.permanent = True
        return "ok"

    @app.get("/login")
    def login() -> str:
        flask.session["user"] = "ada"
        return repr(flask.session.permanent)

    @app.get("/login-remembered")
    def login_remembered() -> str:
        flask.session.permanent = True
        flask.session["user"] = "ada"
        return "ok"

    client = webtest.TestApp(app)
    assert client.get("/remember").headers.getall("Set-Cookie") == []
    assert client.get("/login").text == "False"
    response = webtest.TestApp(app).get("/login-remembered")
    assert "Max-Age=" in flows.session_cookie(response, "session")
