"""Flask: a session bound to a user but holding no data is a login, not an empty session.

Flask's rule, which the adapter keeps, is that a session modified to be
empty loses its cookie (its record is kept, emptied). A session that
``bind_user()`` made is not empty: it has an owner, listed in the user's
sessions and revocable. A login view that stores nothing else
(``session.clear(); session.bind_user(user.id)``) must stay logged in.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, session

from wsgisession.contrib.flask import init_app
from wsgisession.stores import SQLiteStore


def bound_app(tmp_path: Path) -> Flask:
    app = Flask(__name__)
    init_app(app, store=SQLiteStore(str(tmp_path / "sessions.sqlite3")))

    @app.post("/login")
    def login() -> str:
        session.clear()  # whatever an anonymous visitor left
        session.bind_user(7)  # type: ignore[attr-defined]
        return "welcome"

    @app.post("/forget-cart")
    def forget_cart() -> str:
        session.pop("cart", None)
        return "ok"

    @app.post("/cart")
    def cart() -> str:
        session["cart"] = ["tea"]
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.user_id)  # type: ignore[attr-defined]

    return app


def test_a_login_that_stores_no_data_stays_logged_in(tmp_path: Path) -> None:
    app = bound_app(tmp_path)
    client = app.test_client()
    response = client.post("/login")
    assert response.headers.getlist("Set-Cookie"), "the login sends its cookie"
    assert client.get("/whoami").text == "7"
    middleware = app.extensions["wsgisession"]
    assert len(middleware.user_sessions(7)) == 1


def test_removing_the_last_value_of_a_bound_session_keeps_the_login(
    tmp_path: Path,
) -> None:
    app = bound_app(tmp_path)
    client = app.test_client()
    client.post("/login")
    client.post("/cart")
    client.post("/forget-cart")
    assert client.get("/whoami").text == "7"
    assert len(app.extensions["wsgisession"].user_sessions(7)) == 1


def test_an_emptied_unbound_session_still_loses_its_cookie(tmp_path: Path) -> None:
    app = bound_app(tmp_path)
    client = app.test_client()
    client.post("/cart")
    response = client.post("/forget-cart")
    (cookie,) = response.headers.getlist("Set-Cookie")
    assert "Max-Age=0" in cookie


def test_a_permanent_login_without_data_is_refreshed_like_one_with_data(
    tmp_path: Path,
) -> None:
    """SESSION_REFRESH_EACH_REQUEST (Flask's default) re-saves a permanent
    session on every request, so that an active user's expiry slides. A
    login that stores no data is a session too: it must slide, or an app
    whose PERMANENT_SESSION_LIFETIME is an idle timeout logs an active user
    out that long after the login."""
    app = bound_app(tmp_path)

    @app.post("/remember")
    def remember() -> str:
        session.permanent = True
        return "remembered"

    client = app.test_client()
    client.post("/login")
    (cookie,) = client.post("/remember").headers.getlist("Set-Cookie")
    assert "Max-Age=2678400" in cookie
    refreshed = client.get("/whoami")
    assert refreshed.text == "7"
    (cookie,) = refreshed.headers.getlist("Set-Cookie") or [""]
    assert "Max-Age=2678400" in cookie, "the permanent login was not refreshed"
