"""Flask-Login's flows on wsgisession, beside Flask's own cookie session.

Flask-Login is not a test dependency: :mod:`flask_login_calls` replays the
session calls of Flask-Login 0.6.3 (``login_user``, ``logout_user``, the
"remember me" cookie and its ``after_request`` hook). These tests check
what docs/user_sessions.rst tells a Flask-Login user: where to bind the
session, how to end a logout so that the remember cookie goes too, and
that "log out everywhere" does not reach a valid remember cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
import pytest
import webtest
from flask_login_calls import REMEMBER_COOKIE, LoginCalls
from helpers import build_store, store_argument

from wsgisession import SessionMiddleware
from wsgisession.contrib.flask import init_app
from wsgisession.contrib.flask import session as typed_session
from wsgisession.stores import SignedCookieStore

SECRET = "kq3Vx9LmT2pZr8WcN5yHb7JdF4sGa6Ue"

#: The stores a Flask-Login app would bind sessions on (the cookie store cannot).
BINDING_STORES = ["memory", "sqlite", "redis"]


def documented_logout(calls: LoginCalls) -> str:
    """The logout view docs/user_sessions.rst gives a Flask-Login user (its
    ``@login_required`` has loaded the user): ``session.flush()``, then
    ``logout_user()``, which then notes in the session that the remember
    cookie must go (``clear()`` or ``flush()`` after it erased that note)."""
    typed_session.flush()
    calls.logout_user()
    return "out"


def bind_to_user(user_id: str) -> None:
    """The docs' handler of ``user_logged_in`` and ``user_loaded_from_cookie``."""
    typed_session.bind_user(user_id)


def login_app(
    store: Any,
    *,
    bind: bool,
    logout: Any = documented_logout,
    login_required: bool = True,
) -> tuple[flask.Flask, SessionMiddleware | None]:
    """A Flask app logging "ada" in as Flask-Login does; ``store`` None keeps
    Flask's own cookie session. With ``bind``, its ``user_logged_in`` and
    ``user_loaded_from_cookie`` handlers call ``session.bind_user``; with
    ``login_required``, ``/logout`` loads the user before its view runs."""
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    middleware = None if store is None else init_app(app, store=store)
    hook = bind_to_user if bind else None
    calls = LoginCalls(app, on_login=hook, on_cookie_login=hook)

    @app.get("/login")
    def login() -> str:
        calls.login_user("ada", remember=flask.request.args.get("remember") == "1")
        return "in"

    @app.get("/logout")
    def logout_view() -> Any:
        if login_required and calls.current_user() is None:
            flask.abort(401)
        return logout(calls)

    @app.get("/whoami")
    def whoami() -> str:
        return repr(calls.current_user())

    return app, middleware


@pytest.fixture(params=BINDING_STORES)
def binding_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind = request.param
    return build_store(kind, store_argument(kind, request, tmp_path))


def set_cookies(response: webtest.TestResponse) -> dict[str, str]:
    """Name -> value of each cookie the response sets ("" when it deletes it)."""
    cookies = {}
    for header in response.headers.getall("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.partition(";")[0]
    return cookies


def test_the_documented_logout_deletes_the_remember_cookie_and_unbinds(
    binding_store: Any,
) -> None:
    app, middleware = login_app(binding_store, bind=True)
    assert middleware is not None
    client = webtest.TestApp(app)
    client.get("/login?remember=1")
    assert len(middleware.user_sessions("ada")) == 1

    out = client.get("/logout")

    assert set_cookies(out) == {REMEMBER_COOKIE: "", "session": ""}
    assert client.get("/whoami").text == "None"  # the remember cookie is gone
    assert middleware.user_sessions("ada") == []


def test_clearing_after_logout_user_lets_the_remember_cookie_log_in_again(
    binding_store: Any,
) -> None:
    """The order the docs warn against: ``clear()`` (or ``flush()``) after
    ``logout_user()`` erases its note, the remember cookie stays, and the
    next request is logged in again, in a new session bound to no one."""

    def clear_after(calls: LoginCalls) -> str:
        calls.logout_user()
        typed_session.clear()
        return "out"

    app, middleware = login_app(binding_store, bind=False, logout=clear_after)
    assert middleware is not None
    client = webtest.TestApp(app)
    client.get("/login?remember=1")

    out = client.get("/logout")

    assert REMEMBER_COOKIE not in set_cookies(out)
    assert client.get("/whoami").text == "'ada'"


def test_a_flush_before_the_user_is_loaded_binds_a_new_session(
    binding_store: Any,
) -> None:
    """Why the docs' logout view loads the user first (``@login_required``):
    ``logout_user()`` loads it, and after the flush it comes from the
    remember cookie into a new session, which the signal binds again."""
    app, middleware = login_app(binding_store, bind=True, login_required=False)
    assert middleware is not None
    client = webtest.TestApp(app)
    client.get("/login?remember=1")

    out = client.get("/logout")

    assert set_cookies(out)[REMEMBER_COOKIE] == ""
    assert set_cookies(out)["session"] != ""  # a new session, bound and listed
    assert len(middleware.user_sessions("ada")) == 1


def test_log_out_everywhere_does_not_reach_a_valid_remember_cookie(
    binding_store: Any,
) -> None:
    """A session restored from the remember cookie is bound by the
    ``user_loaded_from_cookie`` handler, so it is listed and revoked; the
    remember cookie then logs the browser in again, in a new bound session."""
    app, middleware = login_app(binding_store, bind=True)
    assert middleware is not None
    first = webtest.TestApp(app)
    first.get("/login?remember=1")
    laptop = webtest.TestApp(app)  # the browser was closed: its session cookie went
    laptop.set_cookie(REMEMBER_COOKIE, first.cookies[REMEMBER_COOKIE])

    assert laptop.get("/whoami").text == "'ada'"  # from the remember cookie
    assert (
        len(middleware.user_sessions("ada")) == 2
    )  # the dropped one, until it expires

    assert middleware.revoke_user_sessions("ada") == 2
    assert laptop.get("/whoami").text == "'ada'"  # logged in again
    assert len(middleware.user_sessions("ada")) == 1


def plain_logout(calls: LoginCalls) -> str:
    """Flask-Login's own logout view: ``logout_user()`` alone."""
    calls.logout_user()
    return "out"


def flow_app(store: Any) -> flask.Flask:
    """:func:`login_app` with Flask-Login's plain logout, ``flash()`` with
    categories across a redirect and a Flask-WTF-like CSRF token."""
    app, _ = login_app(store, bind=False, logout=plain_logout)

    @app.get("/welcome")
    def welcome() -> Any:
        flask.flash("welcome")
        flask.flash("check your mail", "warning")
        return flask.redirect("/shown")

    @app.get("/shown")
    def shown() -> str:
        return repr(flask.get_flashed_messages(with_categories=True))

    @app.get("/token")
    def token() -> str:  # Flask-WTF's generate_csrf(): made once, kept
        return str(flask.session.setdefault("csrf_token", "t" + SECRET[:8]))

    return app


def walk(app: flask.Flask) -> list[tuple[str, int, str, list[str]]]:
    """Each step's path, status, body and cookies (name, set or deleted,
    whether it outlives the browser)."""
    client = webtest.TestApp(app)
    steps = ["/whoami", "/login?remember=1", "/welcome", "/shown", "/shown"]
    steps += ["/token", "/token", "/logout", "/whoami", "/shown"]
    rows = []
    for path in steps:
        response = client.get(path, status="*")
        cookies = []
        for header in response.headers.getall("Set-Cookie"):
            name, _, rest = header.partition("=")
            kept = "Expires=Thu, 01 Jan 1970" not in rest
            lasting = kept and "Expires=" in rest
            cookies.append(f"{name} {'set' if kept else 'deleted'} {lasting}")
        rows.append((path, response.status_int, response.text, sorted(cookies)))
    return rows


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis", "cookie"])
def test_flask_login_flash_and_csrf_answer_as_with_flasks_own_session(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "cookie":
        store: Any = SignedCookieStore(SECRET)
    else:
        store = build_store(kind, store_argument(kind, request, tmp_path))

    assert walk(flow_app(store)) == walk(flow_app(None))
