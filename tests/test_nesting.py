"""Two SessionMiddleware instances on one request path: a request has one session.

An app mounted under a wrapped outer app (Bottle's ``mount()``, werkzeug's
``DispatcherMiddleware``) and wrapped itself finds the outer session in
environ: with the same store and settings it uses it (the outer middleware
saves it and sends one cookie); otherwise it fails at once, naming what
differs. Two independent sessions, under their own environ keys and cookie
names, keep working side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle
import pytest
import session_flows as flows
import webtest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from wsgisession import Session, SessionMiddleware
from wsgisession.contrib.flask import init_app
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Store


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def bottle_session(key: str = "wsgisession") -> Session:
    return bottle.request.environ[key]  # type: ignore[no-any-return]


def admin_app() -> bottle.Bottle:
    admin = bottle.Bottle()
    admin.config["catchall"] = False  # a ConfigError reaches the test

    @admin.get("/page")
    def page() -> str:
        bottle_session()["admin"] = bottle_session().get("admin", 0) + 1
        return "admin"

    @admin.get("/stream")
    def stream() -> Any:
        bottle_session()["streamed"] = True
        yield "chunk"

    return admin


def main_app(admin: Any) -> bottle.Bottle:
    """A Bottle app whose hooks use the session around every request, the
    mounted app's too, with ``admin`` mounted at /admin."""
    main = bottle.Bottle()
    main.config["catchall"] = False
    main.mount("/admin/", admin)

    @main.hook("before_request")
    def count() -> None:
        bottle_session()["seen"] = bottle_session().get("seen", 0) + 1

    @main.hook("after_request")
    def last_path() -> None:
        bottle_session()["last"] = bottle.request.path

    @main.get("/")
    def index() -> str:
        return "main"

    return main


def stored(store: Store, client: webtest.TestApp, name: str = "sessionid") -> Any:
    """What the store holds for the client's cookie ``name``."""
    reader = SessionMiddleware(main_app(admin_app()), store)
    return dict(reader.open_session(client.cookies[name]))


def session_cookies(response: webtest.TestResponse, name: str = "sessionid") -> list:
    return [c for c in response.headers.getall("Set-Cookie") if c.startswith(name)]


@pytest.mark.parametrize("lock", [False, True])
def test_a_mounted_wrapped_bottle_app_shares_the_outer_session(
    store: Store, lock: bool
) -> None:
    options: dict[str, Any] = {"lock": lock, "lock_timeout": 0.1}
    inner = SessionMiddleware(admin_app(), store, **options)
    client = webtest.TestApp(SessionMiddleware(main_app(inner), store, **options))
    response = client.get("/admin/page")  # a first visit: no cookie yet
    assert len(session_cookies(response)) == 1
    # With the cookie: no LockTimeout on the lock the outer session holds.
    assert len(session_cookies(client.get("/admin/page"))) == 1
    assert len(session_cookies(client.get("/"))) == 1
    assert stored(store, client) == {"seen": 3, "admin": 2, "last": "/"}


def test_a_mounted_generator_view_is_passed_through(store: Store) -> None:
    inner = SessionMiddleware(admin_app(), store)
    client = webtest.TestApp(SessionMiddleware(main_app(inner), store))
    assert client.get("/admin/stream").text == "chunk"
    assert stored(store, client) == {
        "seen": 1,
        "streamed": True,
        "last": "/admin/stream",
    }


def counter(name: str) -> Any:
    """A WSGI app counting its visits in the session."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session[name] = session.get(name, 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(sorted(session.items())).encode()]

    return app


def visits_logged(app: Any) -> Any:
    """A layer that reads the session before ``app`` and writes it after."""

    def layer(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        session.get("user")
        result = app(environ, start_response)
        session["hits"] = session.get("hits", 0) + 1
        return result

    return layer


@pytest.mark.parametrize("lock", [False, True])
def test_dispatcher_middleware_of_wrapped_apps_under_a_wrapped_app(
    store: Store, lock: bool
) -> None:
    options: dict[str, Any] = {"lock": lock, "lock_timeout": 0.1}
    dispatcher = DispatcherMiddleware(
        counter("root"),
        {
            "/a": SessionMiddleware(counter("a"), store, **options),
            "/b": SessionMiddleware(counter("b"), store, **options),
        },
    )
    outer = SessionMiddleware(visits_logged(dispatcher), store, **options)
    client = webtest.TestApp(outer)
    client.get("/")
    response = client.get("/a/x")
    assert len(session_cookies(response)) == 1
    response = client.get("/b/y")
    assert response.text == "[('a', 1), ('b', 1), ('hits', 2), ('root', 1)]"
    assert stored(store, client) == {"root": 1, "a": 1, "b": 1, "hits": 3}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cookie_name": "admin_sid"}, "cookie_name"),
        ({"cookie_age": 600}, "cookie_age"),
        ({"lock": True}, "lock"),
        ({"environ_key": "admin.session"}, "environ_key"),  # the same cookie
    ],
)
def test_an_inner_middleware_of_other_settings_fails_at_once(
    store: Store, options: dict[str, Any], named: str
) -> None:
    inner = SessionMiddleware(admin_app(), store, lock_timeout=0.2, **options)
    client = webtest.TestApp(SessionMiddleware(main_app(inner), store))
    client.get("/")
    with pytest.raises(ConfigError, match=named) as caught:
        client.get("/admin/page")
    assert "environ_key and cookie_name" in str(caught.value)


def test_an_inner_middleware_of_another_store_fails_at_once(store: Store) -> None:
    inner = SessionMiddleware(admin_app(), MemoryStore())
    client = webtest.TestApp(SessionMiddleware(main_app(inner), store))
    with pytest.raises(ConfigError, match="store"):
        client.get("/admin/page")


def test_independent_sessions_under_their_own_key_and_cookie(store: Store) -> None:
    admin = bottle.Bottle()
    admin.config["catchall"] = False

    @admin.get("/page")
    def page() -> str:
        session = bottle_session("admin.session")
        session["admin"] = session.get("admin", 0) + 1
        return "admin"

    inner = SessionMiddleware(
        admin, store, environ_key="admin.session", cookie_name="admin_sid"
    )
    client = webtest.TestApp(SessionMiddleware(main_app(inner), store))
    client.get("/admin/page")
    client.get("/admin/page")
    assert stored(store, client) == {"seen": 2, "last": "/admin/page"}
    assert stored(store, client, "admin_sid") == {"admin": 2}


def test_a_flask_app_of_init_app_inside_a_plain_middleware(store: Store) -> None:
    from flask import Flask, session

    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        session["flask"] = True
        return "flask"

    init_app(app, store)  # its cookie is Flask's "session"
    client = webtest.TestApp(SessionMiddleware(app, store))
    with pytest.raises(ConfigError, match="cookie_name"):
        client.get("/")


def test_a_flask_app_inside_a_middleware_of_its_settings(store: Store) -> None:
    from flask import Flask, session

    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    flask_middleware = init_app(app, store)
    outer = SessionMiddleware(app, store, settings=flask_middleware.settings)
    client = webtest.TestApp(outer)
    assert client.get("/").text == "1"
    response = client.get("/")
    assert response.text == "2"
    assert len(session_cookies(response, "session")) == 1


def test_an_environ_passed_again_for_a_new_request_is_served_anew() -> None:
    """A test (or a server) that passes one environ dict again for the next
    request, wsgiref's ``setup_testing_defaults`` then the cookie added: the
    session the first request left in it is no outer middleware's. The
    second request was passed through to it, so its change was never saved
    and no cookie went out; a lock = true middleware took no lock."""
    from wsgiref.util import setup_testing_defaults

    store = MemoryStore()
    middleware = SessionMiddleware(counter("n"), store)
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    headers: list[list[tuple[str, str]]] = []

    def start_response(status: str, sent: list[tuple[str, str]], *_: Any) -> None:
        headers.append(sent)

    for _ in range(2):
        body = b"".join(middleware(environ, start_response))
        cookies = [v for k, v in headers[-1] if k == "Set-Cookie"]
        assert len(cookies) == 1
        environ["HTTP_COOKIE"] = cookies[0].partition(";")[0]
    assert body == b"[('n', 2)]"
    key = environ["HTTP_COOKIE"].partition("=")[2]
    assert dict(middleware.open_session(key)) == {"n": 2}
