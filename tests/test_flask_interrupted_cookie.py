"""Flask: a page's subrequest that empties a session moved meanwhile leaves
the cookie alone, as every subrequest does (docs/session.rst, "Deleted
meanwhile").

A ``fetch()`` that shows the flashes (``get_flashed_messages()`` empties the
session) runs while a parallel request of the page logs in
(``cycle_key()``): the emptying's save finds the old record gone. A
deleting ``Set-Cookie``, reaching the browser after the login's, would drop
the new cookie and log the user out. A navigation still deletes it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import flask
import pytest
import session_flows as flows
import webtest

from wsgisession.contrib.flask import init_app
from wsgisession.stores import FileStore
from wsgisession.stores.base import Store


@pytest.fixture(params=[*flows.STORE_KINDS, "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "sessions")
    return flows.make_store(request.param, tmp_path)


def make_client(store: Store) -> webtest.TestApp:
    """``/show`` pops the flashes while ``/login`` runs and answers first."""
    app = flask.Flask(__name__)
    init_app(app, store=store)
    client = webtest.TestApp(app)

    @app.post("/flash")
    def add_flash() -> str:
        flask.flash("welcome")
        return "flashed"

    @app.post("/login")
    def login() -> str:
        flask.session.cycle_key()  # type: ignore[attr-defined]
        flask.session["user"] = "alice"
        return "logged in"

    @app.get("/show")
    def show() -> str:
        shown = repr(flask.get_flashed_messages())
        login = threading.Thread(target=lambda: client.post("/login"), daemon=True)
        login.start()  # the page's parallel login, answered first
        login.join(5)
        return shown

    @app.get("/whoami")
    def whoami() -> str:
        return str(flask.session.get("user"))

    return client


def test_a_subrequest_emptying_a_session_moved_meanwhile_keeps_the_new_cookie(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(store)
    client.post("/flash")
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        response = client.get("/show", headers={"Sec-Fetch-Mode": "cors"})
    assert "cookie left alone" in caplog.text
    assert response.text == repr(["welcome"])
    assert "Max-Age=0" not in " ".join(response.headers.getall("Set-Cookie"))
    assert client.get("/whoami").text == "alice"  # still logged in


def test_a_navigation_emptying_a_session_moved_meanwhile_deletes_its_cookie(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """API.md: the response deletes the cookie and a WARNING is logged."""
    client = make_client(store)
    client.post("/flash")
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        response = client.get("/show", headers={"Sec-Fetch-Mode": "navigate"})
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert "its cookie deleted" in caplog.text
