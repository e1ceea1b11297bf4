"""A page's subrequest whose session moved or went meanwhile leaves the cookie alone.

Its response may reach the browser after the one that moved the session
(a login's ``cycle_key()`` in a parallel request of the page) or ended it
(a logout, after which the user logged in again): a deleting
``Set-Cookie`` would then drop the cookie the browser holds by then, the
new one, and log the user out. The request's changes are dropped (they
belong to a session that is gone) and the browser keeps its cookie. A
navigation still deletes it (API.md: "the response deletes the cookie").
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import webtest

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore
from wsgisession.stores.base import Store


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "sessions")
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "sessions.db")
    return MemoryStore()


def browser(store: Store, during_me: str) -> webtest.TestApp:
    """A page whose ``/me`` request (a fetch()) changes the session, while
    ``during_me`` (a login, or a logout then a login) runs in parallel and
    answers first."""
    client: webtest.TestApp

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session, path = environ["wsgisession"], environ["PATH_INFO"]
        if path == "/login":
            session.cycle_key()
            session["user"] = "alice"
        elif path == "/logout":
            session.flush()
        elif path == "/me":
            session["seen"] = session.get("seen", 0) + 1  # loaded, changed
            for step in during_me.split():
                client.get(step)  # its response reaches the browser first
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session.get("user")).encode()]

    client = webtest.TestApp(SessionMiddleware(app, store=store))
    return client


@pytest.mark.parametrize(
    "during_me", ["/login", "/logout /login"], ids=["login", "logout-login"]
)
def test_a_subrequest_whose_session_moved_meanwhile_keeps_the_new_cookie(
    store: Store, during_me: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = browser(store, during_me)
    client.get("/me")  # an anonymous session with data
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        response = client.get("/me", headers={"Sec-Fetch-Mode": "cors"})
    assert "Set-Cookie" not in response.headers
    assert "cookie left alone" in caplog.text
    assert client.get("/whoami").text == "alice"  # still logged in


def test_a_navigation_whose_session_moved_meanwhile_deletes_its_cookie(
    store: Store,
) -> None:
    """API.md: the response of an interrupted save deletes the cookie."""
    client = browser(store, "/login")
    client.get("/me")
    response = client.get("/me", headers={"Sec-Fetch-Mode": "navigate"})
    assert "Max-Age=0" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("accessed", [True, False])
def test_a_subrequest_whose_session_went_varies_as_the_app_used_it(
    store: Store, accessed: bool
) -> None:
    """No cookie goes out: the response says ``Vary: Cookie`` only if the app
    left ``accessed`` set (one that sets it back to False says the response
    does not depend on the session, as an untouched one)."""
    middleware = SessionMiddleware(lambda environ, start: [b""], store=store)
    session = middleware.open_session()
    session["n"] = 1
    session.save()
    key = session.session_key
    assert key is not None

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["n"] += 1
        store.delete(key)  # a logout in another tab, meanwhile
        session.accessed = accessed
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = webtest.TestApp(SessionMiddleware(app, store=store))
    client.set_cookie("sessionid", key)
    response = client.get("/", headers={"Sec-Fetch-Mode": "cors"})
    assert "Set-Cookie" not in response.headers
    assert (response.headers.get("Vary") == "Cookie") is accessed
