"""Flask with ``wsgisession.contrib.flask``: the real Flask, driven by WebTest."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import flask
import pytest
import session_flows as flows
import webtest

from wsgisession import Session, SessionMiddleware
from wsgisession.contrib.flask import (
    FlaskSession,
    WsgiSessionInterface,
    find_middleware,
    init_app,
)
from wsgisession.stores.base import Store


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def make_app(store: Store, **options: Any) -> tuple[flask.Flask, SessionMiddleware]:
    """A Flask app with views for visits, login, logout, flash and permanence.

    Its ``SESSION_COOKIE_NAME`` is the one the shared flows expect.
    """
    app = flask.Flask(__name__)
    app.config["SESSION_COOKIE_NAME"] = "sessionid"
    middleware = init_app(app, store=store, **options)
    session: Any = flask.session

    @app.get("/visit")
    def visit() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    @app.post("/login")
    def login() -> str:
        session.cycle_key()
        session["user"] = flask.request.form["user"]
        return "welcome"

    @app.post("/logout")
    def logout() -> str:
        session.flush()
        return "bye"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    @app.get("/nothing")
    def nothing() -> str:
        return "no session here"

    @app.post("/flash")
    def add_flash() -> str:
        flask.flash(flask.request.form["message"], flask.request.form["category"])
        return "flashed"

    @app.get("/flashes")
    def show_flashes() -> str:
        return repr(flask.get_flashed_messages(with_categories=True))

    @app.post("/permanent/<value>")
    def set_permanent(value: str) -> str:
        session.permanent = value == "yes"
        return repr(session.permanent)

    @app.get("/cart/add/<item>")
    def add_to_cart(item: str) -> str:
        session.setdefault("cart", [])
        session["cart"].append(item)  # changed in place: no modified = True
        return repr(session["cart"])

    return app, middleware


def test_visits_are_counted_across_requests(store: Store) -> None:
    app, _ = make_app(store)
    flows.check_visits_are_counted(webtest.TestApp(app))


def test_flask_session_is_the_wsgisession_session(store: Store) -> None:
    app, _ = make_app(store)
    seen: list[Any] = []

    @app.get("/same")
    def same() -> str:
        proxy = flask.session._get_current_object()  # type: ignore[attr-defined]
        seen.append((proxy, flask.request.environ["wsgisession"]))
        flask.session["a"] = 1
        return str(flask.request.environ["wsgisession"]["a"])

    assert webtest.TestApp(app).get("/same").text == "1"
    proxy, raw = seen[0]
    assert isinstance(proxy, FlaskSession)
    assert isinstance(raw, Session)
    assert proxy.wsgisession is raw


def test_login_cycles_the_key_and_the_old_one_no_longer_loads(store: Store) -> None:
    app, middleware = make_app(store)
    flows.check_login_cycles_the_key(webtest.TestApp(app), middleware, store)


def test_logout_flushes_and_the_old_cookie_no_longer_loads(store: Store) -> None:
    app, middleware = make_app(store)
    flows.check_logout_deletes_the_cookie(webtest.TestApp(app), middleware, store)


def test_cookie_attributes_reflect_the_options(store: Store) -> None:
    app, _ = make_app(
        store,
        cookie_name="app_sid",
        cookie_age=3600,
        cookie_domain="example.com",
        cookie_path="/app",
        cookie_secure=True,
        cookie_samesite="Strict",
        expire_at_browser_close=False,
    )
    response = webtest.TestApp(app).get("/visit")
    flows.assert_cookie_attributes(
        flows.session_cookie(response, "app_sid"),
        [
            "Max-Age=3600",
            "Domain=example.com",
            "Path=/app",
            "SameSite=Strict",
            "Secure",
            "HttpOnly",
        ],
    )
    assert "Cookie" in response.headers["Vary"]
    assert "session=" not in " ".join(response.headers.getall("Set-Cookie"))


def test_untouched_request_sets_no_cookie(store: Store) -> None:
    app, _ = make_app(store)
    client = webtest.TestApp(app)
    client.get("/visit")
    response = client.get("/nothing")
    assert response.headers.getall("Set-Cookie") == []
    assert "Vary" not in response.headers


def test_flash_messages_round_trip(store: Store) -> None:
    app, _ = make_app(store)
    client = webtest.TestApp(app)
    client.post("/flash", {"message": "saved", "category": "info"})
    client.post("/flash", {"message": "careful", "category": "warning"})
    shown = client.get("/flashes").text
    assert shown == repr([("info", "saved"), ("warning", "careful")])
    assert client.get("/flashes").text == "[]"


def test_nested_change_is_saved_without_setting_modified(store: Store) -> None:
    app, _ = make_app(store)
    client = webtest.TestApp(app)
    client.get("/cart/add/apple")
    assert client.get("/cart/add/pear").text == repr(["apple", "pear"])
    assert client.get("/cart/add/fig").text == repr(["apple", "pear", "fig"])


def test_sessions_end_with_the_browser_unless_permanent_as_in_flask(
    store: Store,
) -> None:
    app, _ = make_app(store, cookie_age=600)
    client = webtest.TestApp(app)
    first = flows.session_cookie(client.get("/visit"))
    assert "Max-Age" not in first  # Flask's default: session.permanent is False
    assert "Expires" not in first
    response = client.post("/permanent/yes")
    assert response.text == "True"
    assert "Max-Age=600" in flows.session_cookie(response)
    response = client.post("/permanent/no")
    assert response.text == "False"
    header = flows.session_cookie(response)
    assert "Max-Age" not in header
    assert "Expires" not in header


def test_permanent_false_overrides_a_permanent_default(store: Store) -> None:
    app, _ = make_app(store, cookie_age=600, expire_at_browser_close=False)
    client = webtest.TestApp(app)
    assert "Max-Age=600" in flows.session_cookie(client.get("/visit"))
    response = client.post("/permanent/no")
    assert response.text == "False"
    assert "Max-Age" not in flows.session_cookie(response)


def test_setting_permanent_to_its_value_changes_nothing(store: Store) -> None:
    app, _ = make_app(store)
    client = webtest.TestApp(app)
    client.get("/visit")
    response = client.post("/permanent/no")  # already a browser-session cookie
    assert response.text == "False"
    assert response.headers.getall("Set-Cookie") == []


def test_flags_new_modified_accessed(store: Store) -> None:
    app, _ = make_app(store)
    flags: list[tuple[bool, bool, bool]] = []

    @app.get("/flags")
    def flags_view() -> str:
        session: Any = flask.session
        before = session.new
        session["x"] = 1
        flags.append((before, session.modified, session.accessed))
        return "ok"

    @app.get("/read")
    def read() -> str:
        session: Any = flask.session
        session.get("x")
        flags.append((session.new, session.modified, session.accessed))
        return "ok"

    client = webtest.TestApp(app)
    client.get("/flags")
    client.get("/read")
    assert flags == [(True, True, True), (False, False, True)]


def test_test_client_session_transaction(store: Store) -> None:
    app, _ = make_app(store)
    client = app.test_client()
    with client.session_transaction() as session:
        assert isinstance(session, FlaskSession)
        session["visits"] = 41
    assert client.get("/visit").text == "42"
    with client.session_transaction() as session:
        assert session["visits"] == 42
        session.flush()  # type: ignore[attr-defined]
    assert client.get("/visit").text == "1"


def test_test_request_context_opens_a_session_from_the_cookie(store: Store) -> None:
    app, middleware = make_app(store)
    stored = middleware.open_session()
    stored["user"] = "ada"
    stored.save()
    cookie = f"sessionid={stored.session_key}"
    with app.test_request_context("/", headers={"Cookie": cookie}):
        assert flask.session["user"] == "ada"


def test_wrapping_the_whole_app_works_too(store: Store) -> None:
    app = flask.Flask(__name__)
    app.session_interface = WsgiSessionInterface()

    @app.get("/")
    def index() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    client = webtest.TestApp(SessionMiddleware(app, store=store))
    assert [client.get("/").text for _ in range(2)] == ["1", "2"]


def test_custom_environ_key_is_followed(store: Store) -> None:
    app, _ = make_app(store, environ_key="my.session")
    client = webtest.TestApp(app)
    assert [client.get("/visit").text for _ in range(2)] == ["1", "2"]


def test_missing_middleware_fails_on_write_with_the_fix() -> None:
    app = flask.Flask(__name__)
    app.session_interface = WsgiSessionInterface()

    @app.get("/")
    def index() -> str:
        assert flask.session.get("x") is None  # reading an empty session is fine
        flask.session["x"] = 1
        return "unreachable"

    app.testing = True
    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/")


class OtherLayer:
    """A WSGI layer that keeps the app under another name than ``.app``
    (as WhiteNoise keeps ``.application``)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.application(environ, start_response)


def test_a_layer_wrapped_around_init_app_keeps_every_feature(store: Store) -> None:
    app, middleware = make_app(store)
    app.wsgi_app = OtherLayer(app.wsgi_app)  # type: ignore[method-assign]
    assert find_middleware(app) is middleware
    client = app.test_client()
    client.get("/visit")
    client.post("/permanent/yes")
    refreshed = client.get("/nothing").headers.getlist("Set-Cookie")
    assert refreshed and "Max-Age" in refreshed[0], "SESSION_REFRESH_EACH_REQUEST"
    with client.session_transaction() as session:
        session["visits"] = 41
    assert client.get("/visit").text == "42"
    with pytest.raises(RuntimeError, match="already"):
        init_app(app, store=store)


def test_copy_gives_a_plain_dict_as_flasks_session_does(store: Store) -> None:
    app, _ = make_app(store)

    @app.get("/copy")
    def copy() -> str:
        flask.session["a"] = [1]
        copied = flask.session.copy()
        copied["b"] = 2
        return repr((type(copied).__name__, copied, dict(flask.session)))

    text = app.test_client().get("/copy").text
    assert text == repr(("dict", {"a": [1], "b": 2}, {"a": [1]}))


def test_copy_module_gives_a_snapshot_as_on_flasks_session(store: Store) -> None:
    """``copy.copy(session)`` on Flask's session is a separate dict: a view may
    keep a snapshot, clear the session and restore from it. It must not be
    a second view of the same data (emptied with it)."""
    app, _ = make_app(store)

    @app.get("/snapshot")
    def snapshot() -> str:
        flask.session["next"] = ["/cart"]
        shallow = copy.copy(flask.session)
        deep = copy.deepcopy(flask.session)
        flask.session.clear()
        return repr((type(shallow).__name__, shallow, type(deep).__name__, deep))

    text = app.test_client().get("/snapshot").text
    assert text == repr(("dict", {"next": ["/cart"]}, "dict", {"next": ["/cart"]}))


def test_init_app_twice_is_refused(store: Store) -> None:
    app, middleware = make_app(store)
    assert find_middleware(app) is middleware
    with pytest.raises(RuntimeError, match="already"):
        init_app(app, store=store)
