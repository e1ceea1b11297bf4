"""Flask: a request that empties the session while another one of the same
browser is running (two tabs, a page and its XHR) must not make it lose
what it saves.

A Flask session modified to be empty loses its cookie, as in Flask. The
usual way to empty one is ``get_flashed_messages()`` on a visitor whose
only data was a flash; Flask's own code, which these views run unchanged::

    def flash(message, category="message"):
        flashes = session.get("_flashes", [])
        flashes.append((category, message))
        session["_flashes"] = flashes

    def get_flashed_messages(...):
        flashes = request_ctx.flashes
        if flashes is None:
            flashes = session.pop("_flashes") if "_flashes" in session else []

Flask's cookie session keeps the other request's changes when its response
comes last; wsgisession merges them into the record, so it must keep them
in either order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import flask
import pytest
import session_flows as flows
import webtest

from wsgisession.contrib.flask import init_app
from wsgisession.stores import FileStore
from wsgisession.stores.base import Store

#: The stores of the review: memory, SQLite and files.
KINDS = [*flows.STORE_KINDS, "file"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "sessions")
    return flows.make_store(request.param, tmp_path)


def make_app(store: Store) -> tuple[flask.Flask, webtest.TestApp]:
    """``/flash`` and ``/cart`` write, ``/show`` pops the flashes; a hook
    runs in ``/show`` and ``/flash`` (once the session is loaded) when set."""
    app = flask.Flask(__name__)
    init_app(app, store=store)
    client = webtest.TestApp(app)
    app.config["HOOK"] = None

    def hook() -> None:
        run: Callable[[], None] | None = app.config["HOOK"]
        if run is not None:
            app.config["HOOK"] = None
            run()

    @app.post("/flash")
    def add_flash() -> str:
        flask.session.get("cart")  # loaded at the start, as a CSRF check does
        hook()
        flask.flash(flask.request.form["message"])
        return "flashed"

    @app.post("/cart")
    def add_to_cart() -> str:
        flask.session["cart"] = ["apple"]
        return "added"

    @app.get("/show")
    def show() -> str:
        shown = repr(flask.get_flashed_messages())
        hook()
        return shown

    @app.get("/cart")
    def cart() -> str:
        return repr(flask.session.get("cart"))

    return app, client


def in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_flash_of_a_request_running_while_the_last_one_is_shown_is_not_lost(
    store: Store,
) -> None:
    """A slow POST loaded the session, then another tab's page showed (and
    so emptied) it and ended first; the POST's flash, saved last, must be
    shown on the next page. Flask's cookie session shows it (its cookie
    came last); deleting the emptied record made the POST's save fail as if
    the user had logged out, and the message was never shown."""
    app, client = make_app(store)
    client.post("/flash", {"message": "draft saved"})
    loaded, resume = threading.Event(), threading.Event()

    def wait() -> None:
        loaded.set()
        assert resume.wait(5)

    app.config["HOOK"] = wait
    responses: list[webtest.TestResponse] = []
    post = in_thread(
        lambda: responses.append(client.post("/flash", {"message": "message sent"}))
    )
    assert loaded.wait(5)
    assert client.get("/show").text == repr(["draft saved"])
    resume.set()
    post.join(5)
    assert responses, "the POST did not finish"
    assert "message sent" in client.get("/show").text


def test_a_write_saved_while_a_request_empties_the_session_is_kept(
    store: Store,
) -> None:
    """The other tab's write ended while this request, which emptied the
    session, was running: the record then holds the cart, so the session is
    not empty and keeps its record and cookie (the merge of changed keys is
    wsgisession's promise); the flush of the emptied session deleted it."""
    app, client = make_app(store)
    client.post("/flash", {"message": "welcome"})
    app.config["HOOK"] = lambda: in_thread(lambda: client.post("/cart")).join(5)
    response = client.get("/show")
    assert response.text == repr(["welcome"])
    assert "Max-Age=0" not in " ".join(response.headers.getall("Set-Cookie"))
    assert client.get("/cart").text == repr(["apple"])
