"""The Flask adapter when the store fails a load: Flask answers, the session stays.

Flask catches what a view raises and answers itself (its 500 page, or the
app's error handler). A session whose load failed (``LockTimeout``, or
``StoreUnavailable`` during an outage) must then neither look empty to
the app nor lose its cookie: the user is still logged in once the store
answers again.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, session
from flask_support import login_app

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key
from wsgisession.stores import FileStore, MemoryStore
from wsgisession.stores.base import Store


def make_app(store: Store, **options: object) -> Flask:
    """An app with Flask's production defaults: it answers errors itself."""
    app = login_app(store, **options)

    @app.errorhandler(StoreUnavailable)
    def store_down(error: StoreUnavailable) -> tuple[str, int]:
        try:
            user = repr(session.get("user"))
        except StoreUnavailable:  # still down: never an empty session instead
            user = "unknown"
        return f"down; user {user}", 503

    return app


def test_a_lock_timeout_answered_by_flask_keeps_the_session() -> None:
    store = MemoryStore()
    client = make_app(store, lock=True, lock_timeout=0.05).test_client()
    assert client.get("/login").text == "in"
    cookie = client.get_cookie("session")
    assert cookie is not None
    with store.lock(cookie.value, 5.0, 60.0):  # a slow request of the same session
        response = client.get("/whoami")
    assert response.status_code == 500  # Flask's own page for the LockTimeout
    assert response.headers.getlist("Set-Cookie") == [], "the user was logged out"
    assert client.get("/whoami").text == "'ada'"


def test_an_outage_answered_by_an_error_handler_keeps_the_session(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sessions"
    client = make_app(FileStore(root)).test_client()
    assert client.get("/login").text == "in"
    cookie = client.get_cookie("session")
    assert cookie is not None
    shard = root / storage_key(cookie.value)[:2]
    aside = tmp_path / "aside"
    shard.rename(aside)
    shard.write_text("not a directory")  # the store fails every read of this session

    response = client.get("/whoami")
    assert response.status_code == 503
    assert response.text == "down; user unknown"  # not an empty session
    assert response.headers.getlist("Set-Cookie") == [], "the user was logged out"

    shard.unlink()
    aside.rename(shard)
    assert client.get("/whoami").text == "'ada'"


def refreshing_app(store: Store, **options: object) -> Flask:
    """``/remember`` makes the session permanent, which Flask's default
    ``SESSION_REFRESH_EACH_REQUEST`` re-saves on every request;
    ``/public`` never uses the session."""
    app = login_app(store, **options)

    @app.route("/public")
    def public() -> str:
        return "public"

    @app.route("/remember")
    def remember() -> str:
        session.permanent = True
        return "remembered"

    return app


def test_a_page_without_the_session_answers_during_an_outage(tmp_path: Path) -> None:
    """Only the refresh of a permanent session wanted the load: its failure
    leaves the page (a public page, a static file) as the app made it."""
    root = tmp_path / "sessions"
    client = refreshing_app(FileStore(root)).test_client()
    client.get("/login")
    client.get("/remember")
    cookie = client.get_cookie("session")
    assert cookie is not None
    shard = root / storage_key(cookie.value)[:2]
    aside = tmp_path / "aside"
    shard.rename(aside)
    shard.write_text("not a directory")

    response = client.get("/public")
    assert (response.status_code, response.text) == (200, "public")
    assert response.headers.getlist("Set-Cookie") == []

    shard.unlink()
    aside.rename(shard)
    refreshed = client.get("/whoami")
    assert refreshed.text == "'ada'"
    assert "Max-Age=" in refreshed.headers["Set-Cookie"]  # refreshed again


def test_a_page_without_the_session_answers_while_another_holds_its_lock() -> None:
    store = MemoryStore()
    client = refreshing_app(store, lock=True, lock_timeout=0.05).test_client()
    client.get("/login")
    client.get("/remember")
    cookie = client.get_cookie("session")
    assert cookie is not None
    with store.lock(cookie.value, 5.0, 60.0):  # a slow request of the same session
        response = client.get("/public")
    assert (response.status_code, response.text) == (200, "public")
    assert response.headers.getlist("Set-Cookie") == []
    assert client.get("/whoami").text == "'ada'"
