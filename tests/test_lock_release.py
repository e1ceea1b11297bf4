"""The request lock (``lock = true``) is released whatever the app does, also
when the response ends up not touching the session (an app that sets
``accessed = False`` after a read, a retried request whose last attempt
never uses the session)."""

from __future__ import annotations

from typing import Any

import bottle
import pytest
import webtest
from helpers import make_store
from pyramid.config import Configurator
from pyramid.response import Response

from wsgisession import SessionMiddleware
from wsgisession.contrib.pyramid import make_wsgi_app
from wsgisession.errors import LockTimeout
from wsgisession.stores import MemoryStore


def saved_session(middleware: SessionMiddleware) -> str:
    existing = middleware.open_session()
    existing["name"] = "ada"
    existing.save()
    key = existing.session_key
    assert key is not None
    return key


def assert_lock_free(store: Any, key: str) -> None:
    try:
        with store.lock(key, 0.2, 5):
            pass
    except LockTimeout:
        pytest.fail("the request left the session's lock held")


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_a_read_then_accessed_false_releases_the_lock(kind: str, tmp_path: Any) -> None:
    """docs/session.rst: an app "may also set accessed = False, as in Django,
    to keep a page that sends no cookie free of Vary: Cookie". The read took
    the lock (lock = true); the response must release it. The server still
    holds the request's environ (an access log, a framework's request
    object in a reference cycle), so nothing frees the session meanwhile."""
    store = make_store(kind, tmp_path)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        name = session.get("name", "?")
        session.accessed = False  # a cacheable page: no Vary: Cookie
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    middleware = SessionMiddleware(app, store, lock=True, lock_timeout=0.2)
    key = saved_session(middleware)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_COOKIE": f"sessionid={key}",
    }
    assert list(middleware(environ, lambda s, h, e=None: None)) == [b"ada"]
    assert_lock_free(store, key)


def test_bottle_page_that_clears_accessed_releases_the_lock() -> None:
    """Bottle keeps its request in the environ (a reference cycle)."""
    app = bottle.Bottle()

    @app.route("/")
    def page() -> str:
        session = bottle.request.environ["wsgisession"]
        name = session.get("name", "?")
        session.accessed = False
        return name

    store = MemoryStore()
    middleware = SessionMiddleware(app, store, lock=True, lock_timeout=0.2)
    key = saved_session(middleware)
    client = webtest.TestApp(middleware)
    client.set_cookie("sessionid", key)
    assert client.get("/").text == "ada"
    assert_lock_free(store, key)
    assert client.get("/").text == "ada"  # LockTimeout (a 500) before the fix


def test_pyramid_retry_that_never_uses_the_session_releases_the_lock() -> None:
    """The failed attempt read the session (and took its lock); the retry that
    answers never uses it, so the response is "untouched"."""
    from pyramid_retry import RetryableException

    attempts: list[int] = []

    def checkout(request: Any) -> Response:
        attempts.append(1)
        if len(attempts) == 1:
            request.session.get("name")
            raise RetryableException()
        return Response("ok")

    settings = {
        "wsgisession.store": "memory",
        "wsgisession.lock": "true",
        "wsgisession.lock_timeout": "0.2",
        "retry.attempts": "3",
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_retry")
        config.include("wsgisession.contrib.pyramid")
        config.add_route("checkout", "/checkout")
        config.add_view(checkout, route_name="checkout")
        app = make_wsgi_app(config)
    key = saved_session(app)
    client = webtest.TestApp(app)
    client.set_cookie("sessionid", key)
    assert client.get("/checkout").text == "ok" and len(attempts) == 2
    assert_lock_free(app.store, key)


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_a_refused_in_place_change_after_accessed_false_releases_the_lock(
    kind: str, tmp_path: Any
) -> None:
    """The change detection of a response whose app set ``accessed = False``
    raises UnserializableValue (a value changed in place into one JSON
    refuses): the lock must be released all the same."""
    from wsgisession.errors import UnserializableValue

    store = make_store(kind, tmp_path)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session.setdefault("notes", [])
        session.save()
        session["notes"].append(object())
        session.accessed = session.modified = False
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, store, lock=True, lock_timeout=0.2)
    key = saved_session(middleware)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_COOKIE": f"sessionid={key}",
    }
    with pytest.raises(UnserializableValue, match="notes"):
        middleware(environ, lambda s, h, e=None: None)
    assert_lock_free(store, key)  # environ, and so the session, still held
