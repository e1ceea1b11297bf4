"""Bottle needs no adapter: views read ``request.environ["wsgisession"]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle
import pytest
import webtest

from wsgisession import Session, SessionMiddleware
from wsgisession.stores import MemoryStore, SQLiteStore
from wsgisession.stores.base import Store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "sessions.sqlite3")


def session() -> Session:
    return bottle.request.environ["wsgisession"]  # type: ignore[no-any-return]


def make_app(store: Store, **options: Any) -> tuple[webtest.TestApp, SessionMiddleware]:
    app = bottle.Bottle()

    @app.get("/visit")
    def visit() -> str:
        session()["visits"] = session().get("visits", 0) + 1
        return str(session()["visits"])

    @app.post("/login")
    def login() -> str:
        session().cycle_key()
        session()["user"] = bottle.request.forms["user"]
        return "welcome"

    @app.post("/logout")
    def logout() -> str:
        session().flush()
        return "bye"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session().get("user"))

    @app.get("/theme/<name>")
    def theme(name: str) -> str:
        bottle.response.set_cookie("theme", name, path="/")
        session()["theme"] = name
        return name

    middleware = SessionMiddleware(app, store=store, **options)
    return webtest.TestApp(middleware), middleware


def session_cookie(response: webtest.TestResponse, name: str = "sessionid") -> str:
    headers = [
        header
        for header in response.headers.getall("Set-Cookie")
        if header.startswith(name + "=")
    ]
    assert len(headers) == 1, response.headers.getall("Set-Cookie")
    return headers[0]


def cookie_value(response: webtest.TestResponse, name: str = "sessionid") -> str:
    return session_cookie(response, name).split(";", 1)[0].split("=", 1)[1]


def test_visits_are_counted_across_requests(store: Store) -> None:
    client, _ = make_app(store)
    assert [client.get("/visit").text for _ in range(3)] == ["1", "2", "3"]


def test_login_cycles_the_key_and_the_old_one_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    old_key = cookie_value(client.get("/visit"))
    new_key = cookie_value(client.post("/login", {"user": "ada"}))
    assert new_key != old_key
    assert client.get("/whoami").text == "ada"
    assert client.get("/visit").text == "2"
    assert not store.exists(old_key)
    stale = middleware.open_session(old_key)
    assert stale.get("user") is None
    assert stale.session_key is None
    replay = webtest.TestApp(middleware)
    replay.set_cookie("sessionid", old_key)
    assert replay.get("/whoami").text == "None"


def test_logout_flushes_and_the_old_cookie_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    key = cookie_value(client.post("/login", {"user": "ada"}))
    deleting = session_cookie(client.post("/logout"))
    assert deleting.startswith("sessionid=;")
    assert "Max-Age=0" in deleting
    assert client.get("/whoami").text == "None"
    assert not store.exists(key)
    assert middleware.open_session(key).get("user") is None
    replay = webtest.TestApp(middleware)
    replay.set_cookie("sessionid", key)
    assert replay.get("/whoami").text == "None"


def test_cookie_attributes_reflect_the_options(store: Store) -> None:
    client, _ = make_app(
        store,
        cookie_name="app_sid",
        cookie_age=3600,
        cookie_domain="example.com",
        cookie_path="/shop",
        cookie_secure="auto",
        cookie_samesite="None",
        cookie_partitioned=True,
    )
    response = client.get("/visit")
    header = session_cookie(response, "app_sid")
    parts = {part.strip().split("=")[0]: part.strip() for part in header.split(";")}
    assert parts["Max-Age"] == "Max-Age=3600"
    assert parts["Domain"] == "Domain=example.com"
    assert parts["Path"] == "Path=/shop"
    assert parts["SameSite"] == "SameSite=None"
    assert "Secure" in parts  # SameSite=None forces it, even over http
    assert "Partitioned" in parts
    assert "HttpOnly" in parts


def test_app_cookies_are_kept_beside_the_session_cookie(store: Store) -> None:
    client, _ = make_app(store)
    response = client.get("/theme/dark")
    assert session_cookie(response, "theme").startswith("theme=dark")
    assert cookie_value(response)  # the session cookie too
    assert client.get("/visit").text == "1"
