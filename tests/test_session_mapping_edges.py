"""The session against a plain dict: what the mapping model
(test_session_mapping_model.py) and its review found, as plain tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest

from wsgisession import SessionMiddleware
from wsgisession.errors import UnserializableValue
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture(params=["memory", "file", "sqlite"])
def middleware(request: pytest.FixtureRequest, tmp_path: Path) -> SessionMiddleware:
    stores = {
        "memory": MemoryStore,
        "file": lambda: FileStore(tmp_path / "files"),
        "sqlite": lambda: SQLiteStore(tmp_path / "sessions.sqlite3"),
    }
    return SessionMiddleware(_app, stores[request.param](), cleanup_interval=0)


def stored(middleware: SessionMiddleware, **data: object) -> str:
    session = middleware.open_session()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key


# -- keys(), values() and items() are live views, as a dict's ------------------


def test_views_stay_live_across_a_save_that_merged_another_request_s_change(
    middleware: SessionMiddleware,
) -> None:
    """A save that merged another request's change gave the session a new
    dict: the views handed out before it went on showing the old one, without
    the other request's key nor any key set after the save."""
    key = stored(middleware, cart=["book"])
    session = middleware.open_session(key)
    keys, values, items = session.keys(), session.values(), session.items()
    other = middleware.open_session(key)
    other["theme"] = "dark"
    other.save()
    session["user"] = "ann"
    session.save()  # merged: "theme" arrives
    session["step"] = 2
    assert sorted(keys) == ["cart", "step", "theme", "user"]
    assert sorted(map(str, values)) == ["2", "['book']", "ann", "dark"]
    assert dict(items) == dict(session)


@pytest.mark.parametrize("empty", ["clear", "flush"])
def test_views_stay_live_across_clear_and_flush(
    middleware: SessionMiddleware, empty: str
) -> None:
    """``clear()`` and ``flush()`` emptied a new dict: a view of the session
    taken before still listed the old keys, and none set after."""
    session = middleware.open_session(stored(middleware, a=1, b=[2]))
    keys, items = session.keys(), session.items()
    getattr(session, empty)()
    assert list(keys) == []
    session["c"] = 3
    assert list(keys) == ["c"]
    assert dict(items) == {"c": 3}


def test_views_stay_live_across_cycle_key(middleware: SessionMiddleware) -> None:
    key = stored(middleware, a=1)
    session = middleware.open_session(key)
    keys = session.keys()
    other = middleware.open_session(key)
    other["b"] = 2
    other.save()
    session.cycle_key()  # carries "b" to the new key
    session["c"] = 3
    assert sorted(keys) == ["a", "b", "c"]


# -- a value changed in place into a refused one, on a response that saves nothing


def app_that_fails_after(change: str):
    """An app whose request changes the session, then renders its own 500 page."""

    def app(environ, start_response):
        session = environ["wsgisession"]
        if environ["PATH_INFO"] == "/start":
            session["cart"] = {"1": "book"}
        elif change == "in place":
            session["cart"][1] = "pen"  # "1" and 1: one value would be lost
        else:
            session["cart"] = {"1": "book", 1: "pen"}
        status = "200 OK" if environ["PATH_INFO"] == "/start" else "500 Oops"
        start_response(status, [("Content-Type", "text/plain")])
        return [b"the app's own error page" if status != "200 OK" else b"ok"]

    return app


@pytest.mark.parametrize("change", ["in place", "assigned"])
def test_a_server_error_page_is_sent_whatever_the_session_holds(
    middleware: SessionMiddleware, change: str
) -> None:
    """A 5xx response saves nothing, so a value the serializer refuses is no
    reason to replace the app's error page. An assigned one never was; one
    changed in place raised UnserializableValue from the change detection,
    which the response ran before it looked at the status: the server
    answered with its own 500, and the log showed that error instead of the
    app's."""
    wrapped = SessionMiddleware(app_that_fails_after(change), middleware.store)
    client = webtest.TestApp(wrapped)
    client.get("/start")
    key = client.cookies["sessionid"]
    response = client.get("/fail", status=500)
    assert response.body == b"the app's own error page"
    assert "Set-Cookie" not in response.headers
    assert dict(middleware.open_session(key)) == {"cart": {"1": "book"}}


@pytest.mark.parametrize("change", ["in place", "assigned"])
def test_a_refused_value_still_fails_a_response_that_saves(
    middleware: SessionMiddleware, change: str
) -> None:
    """The same change on a 200 response: the save raises, naming the key."""

    def app(environ, start_response):
        app_that_fails_after(change)(environ, lambda *a: None)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = webtest.TestApp(SessionMiddleware(app, middleware.store))
    key = stored(middleware, cart={"1": "book"})
    client.set_cookie("sessionid", key)
    with pytest.raises(UnserializableValue) as info:
        client.get("/fail")
    assert info.value.key == "cart"
    assert dict(middleware.open_session(key)) == {"cart": {"1": "book"}}
