"""``init_app`` and Flask's settings: an app keeps its cookie and lifetime.

Every option not passed to ``init_app`` comes from ``app.config``, read
again when it changes; the session interface reports the values in force.
"""

from __future__ import annotations

import datetime
import gc
import weakref
from pathlib import Path
from typing import Any

import flask
import pytest
import session_flows as flows
import webtest

from wsgisession.contrib._flask_config import options_from_config, refresh_each_request
from wsgisession.contrib.flask import init_app
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore, SQLiteStore
from wsgisession.stores.base import Store

MONTH = 31 * 24 * 3600  # Flask's PERMANENT_SESSION_LIFETIME


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def make_app(
    store: Store, config: dict[str, Any] | None = None, **options: Any
) -> flask.Flask:
    """An app configured by ``config`` first, then given to ``init_app``."""
    app = flask.Flask(__name__)
    app.config.update(config or {})
    init_app(app, store=store, **options)

    @app.get("/set/<value>")
    def set_value(value: str) -> str:
        flask.session["value"] = value
        return "set"

    @app.get("/get")
    def get_value() -> str:
        return str(flask.session.get("value"))

    @app.get("/permanent")
    def make_permanent() -> str:
        flask.session.permanent = True
        return "permanent"

    @app.get("/pop")
    def pop_value() -> str:
        return str(flask.session.pop("value", None))

    @app.get("/nothing")
    def nothing() -> str:
        return "untouched"

    return app


def test_default_config_keeps_flasks_cookie(store: Store) -> None:
    response = webtest.TestApp(make_app(store)).get("/set/a")
    header = flows.session_cookie(response, "session")
    flows.assert_cookie_attributes(
        header,
        ["HttpOnly", "Path=/"],
        ["Max-Age", "Expires", "SameSite", "Secure", "Domain"],
    )


def test_every_cookie_setting_is_read(store: Store) -> None:
    config = {
        "SESSION_COOKIE_NAME": "app_sid",
        "SESSION_COOKIE_DOMAIN": "example.com",
        "SESSION_COOKIE_PATH": "/app",
        "SESSION_COOKIE_HTTPONLY": False,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_PARTITIONED": True,
        "PERMANENT_SESSION_LIFETIME": datetime.timedelta(hours=1),
        "SESSION_PERMANENT": True,
    }
    client = webtest.TestApp(make_app(store, config))
    header = flows.session_cookie(client.get("/set/a"), "app_sid")
    flows.assert_cookie_attributes(
        header,
        ["Domain=example.com", "Path=/app", "Secure", "SameSite=Strict", "Partitioned",
         "Max-Age=3600"],
        ["HttpOnly"],
    )  # fmt: skip


def test_application_root_is_the_default_path(store: Store) -> None:
    app = make_app(store, {"APPLICATION_ROOT": "/shop"})
    header = flows.session_cookie(webtest.TestApp(app).get("/set/a"), "session")
    assert "Path=/shop" in header


def test_lifetime_in_seconds_and_permanent_by_config(store: Store) -> None:
    config = {"PERMANENT_SESSION_LIFETIME": 60, "SESSION_PERMANENT": True}
    client = webtest.TestApp(make_app(store, config))
    assert "Max-Age=60" in flows.session_cookie(client.get("/set/a"), "session")


def test_explicit_options_win_over_the_config(store: Store) -> None:
    config = {"SESSION_COOKIE_NAME": "from_config", "SESSION_COOKIE_SAMESITE": "Strict"}
    app = make_app(store, config, cookie_name="explicit", expire_at_browser_close=False)
    header = flows.session_cookie(webtest.TestApp(app).get("/set/a"), "explicit")
    assert "SameSite=Strict" in header
    assert f"Max-Age={MONTH}" in header
    assert app.session_interface.get_cookie_name(app) == "explicit"


def test_config_changed_after_init_app_is_followed(store: Store) -> None:
    app = make_app(store)
    client = webtest.TestApp(app)
    assert "SameSite" not in flows.session_cookie(client.get("/set/a"), "session")
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    assert "SameSite=Lax" in flows.session_cookie(client.get("/set/b"), "session")
    assert app.session_interface.get_cookie_samesite(app) == "Lax"


def test_the_interface_reports_the_values_in_force(store: Store) -> None:
    config = {
        "SESSION_COOKIE_NAME": "sid",
        "SESSION_COOKIE_DOMAIN": "example.com",
        "APPLICATION_ROOT": "/app",
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": False,
    }
    app = make_app(store, config)
    interface = app.session_interface
    assert interface.get_cookie_name(app) == "sid"
    assert interface.get_cookie_domain(app) == "example.com"
    assert interface.get_cookie_path(app) == "/app"
    assert interface.get_cookie_secure(app) is True
    assert interface.get_cookie_httponly(app) is False
    assert interface.get_cookie_samesite(app) is None
    assert interface.get_cookie_partitioned(app) is False
    client = app.test_client()
    client.get("/set/a", "https://example.com/app")
    cookie = client.get_cookie(
        app.config["SESSION_COOKIE_NAME"], domain="example.com", path="/app"
    )
    assert cookie is not None and cookie.value


def test_the_interface_reports_the_secure_flag_samesite_none_forces(
    store: Store,
) -> None:
    app = make_app(store, {"SESSION_COOKIE_SAMESITE": "None"})
    header = app.test_client().get("/set/a").headers["Set-Cookie"]
    assert "Secure" in header.split("; ")
    assert app.session_interface.get_cookie_secure(app) is True


def test_expiration_time_follows_permanence(store: Store) -> None:
    app = make_app(store)
    with app.test_request_context("/"):
        session: Any = flask.session
        assert app.session_interface.get_expiration_time(app, session) is None
        session.permanent = True
        expires = app.session_interface.get_expiration_time(app, session)
        assert expires is not None
        left = expires - datetime.datetime.now(datetime.UTC)
        assert abs(left.total_seconds() - MONTH) < 60


def test_a_bad_config_value_names_the_flask_setting(store: Store) -> None:
    app = make_app(store)
    app.config["SESSION_COOKIE_SAMESITE"] = "sometimes"
    with pytest.raises(ConfigError, match="SESSION_COOKIE_SAMESITE") as caught:
        webtest.TestApp(app).get("/set/a")
    assert isinstance(caught.value, ValueError)
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"  # fixed: the next request works
    assert webtest.TestApp(app).get("/set/a").text == "set"


def test_a_bad_explicit_option_is_refused_at_init_app(store: Store) -> None:
    with pytest.raises(ConfigError, match="cookie_samesite"):
        init_app(flask.Flask(__name__), store=store, cookie_samesite="sometimes")


def test_refresh_each_request_resaves_permanent_sessions(store: Store) -> None:
    client = webtest.TestApp(make_app(store))
    client.get("/set/a")
    assert client.get("/nothing").headers.getall("Set-Cookie") == []  # not permanent
    client.get("/permanent")
    response = client.get("/nothing")
    assert f"Max-Age={MONTH}" in flows.session_cookie(response, "session")
    assert response.headers["Vary"] == "Cookie"


def test_no_refresh_leaves_untouched_requests_alone(store: Store) -> None:
    app = make_app(
        store, {"SESSION_REFRESH_EACH_REQUEST": False, "SESSION_PERMANENT": True}
    )
    client = webtest.TestApp(app)
    client.get("/set/a")
    response = client.get("/nothing")
    assert response.headers.getall("Set-Cookie") == []
    assert "Vary" not in response.headers


def test_explicit_save_every_request_replaces_the_refresh_setting(store: Store) -> None:
    app = make_app(store, {"SESSION_PERMANENT": True}, save_every_request=False)
    client = webtest.TestApp(app)
    client.get("/set/a")
    assert client.get("/nothing").headers.getall("Set-Cookie") == []


def test_an_untouched_non_permanent_session_gets_no_vary(store: Store) -> None:
    client = webtest.TestApp(make_app(store))
    client.get("/set/a")
    response = client.get("/nothing")
    assert "Vary" not in response.headers
    assert response.headers.getall("Set-Cookie") == []


def test_a_session_emptied_loses_its_cookie_and_its_data(store: Store) -> None:
    """The emptied record stays, empty, until it expires: a request still
    running on it merges into it (tests/test_flask_overlapping_empties.py)."""
    app = make_app(store)
    client = webtest.TestApp(app)
    key = flows.cookie_value(client.get("/set/a"), "session")
    deleting = flows.session_cookie(client.get("/pop"), "session")
    assert deleting.startswith("session=;")
    assert dict(app.extensions["wsgisession"].open_session(key)) == {}
    assert client.get("/get").text == "None"


def test_the_app_is_freed_without_the_garbage_collector() -> None:
    gc.disable()
    try:
        app = flask.Flask(__name__)
        init_app(app, store=MemoryStore())
        freed = weakref.ref(app)
        del app
        assert freed() is None
    finally:
        gc.enable()


def test_serving_the_middleware_of_a_freed_app_says_what_to_serve() -> None:
    def create_app() -> flask.Flask:
        app = flask.Flask(__name__)
        app.get("/")(lambda: "home")
        return app

    application = init_app(create_app(), store=MemoryStore())
    gc.collect()
    with pytest.raises(RuntimeError, match="serve the Flask app itself"):
        webtest.TestApp(application).get("/")


def test_the_middleware_names_its_app_and_store() -> None:
    app = flask.Flask("shop")
    middleware = init_app(app, store=MemoryStore())
    assert (
        repr(middleware)
        == f"FlaskSessionMiddleware(<Flask 'shop'>, store={middleware.store!r})"
    )
    assert repr(middleware.app) == "<wsgi_app of <Flask 'shop'>>"


def test_lock_is_not_left_behind_by_test_helpers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    app = make_app(store, lock=True, lock_timeout=0.5)
    client = app.test_client()
    client.get("/set/a")
    with client.session_transaction() as session:
        assert session["value"] == "a"
        session["value"] = "b"
    assert client.get("/get").text == "b"
    cookie = client.get_cookie("session")
    assert cookie is not None
    with app.test_request_context("/", headers={"Cookie": f"session={cookie.value}"}):
        assert flask.session["value"] == "b"
    assert client.get("/get").text == "b"  # no LockTimeout: nothing holds the lock


def test_a_config_without_flasks_keys_gets_flasks_defaults() -> None:
    assert options_from_config({}, {}) == {
        "cookie_name": "session",
        "cookie_domain": None,
        "cookie_path": "/",
        "cookie_httponly": True,
        "cookie_secure": False,
        "cookie_samesite": False,
        "cookie_partitioned": False,
        "cookie_age": MONTH,
        "expire_at_browser_close": True,
    }
    assert refresh_each_request({}, {}) is True


def test_none_means_what_it_means_to_flask() -> None:
    config = {"SESSION_COOKIE_HTTPONLY": None, "SESSION_REFRESH_EACH_REQUEST": None}
    assert options_from_config(config, {})["cookie_httponly"] is False
    assert refresh_each_request(config, {}) is False


def test_lifetime_in_seconds_or_a_timedelta() -> None:
    for lifetime in (90, 90.5, datetime.timedelta(seconds=90)):
        config = {"PERMANENT_SESSION_LIFETIME": lifetime}
        assert options_from_config(config, {})["cookie_age"] == 90
    with pytest.raises(ConfigError, match="PERMANENT_SESSION_LIFETIME"):
        options_from_config({"PERMANENT_SESSION_LIFETIME": "a month"}, {})


def test_explicit_options_replace_the_config_values() -> None:
    options = options_from_config({"SESSION_COOKIE_NAME": "x"}, {"cookie_name": "y"})
    assert options["cookie_name"] == "y"
    assert refresh_each_request({}, {"save_every_request": True}) is False
