"""Bottle needs no adapter: views read ``request.environ["wsgisession"]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle
import pytest
import session_flows as flows
import webtest

from wsgisession import Session, SessionMiddleware
from wsgisession.stores.base import Store


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


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


def test_visits_are_counted_across_requests(store: Store) -> None:
    client, _ = make_app(store)
    flows.check_visits_are_counted(client)


def test_login_cycles_the_key_and_the_old_one_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    flows.check_login_cycles_the_key(client, middleware, store)


def test_logout_flushes_and_the_old_cookie_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    flows.check_logout_deletes_the_cookie(client, middleware, store)


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
    flows.assert_cookie_attributes(
        flows.session_cookie(response, "app_sid"),
        [
            "Max-Age=3600",
            "Domain=example.com",
            "Path=/shop",
            "SameSite=None",
            "Secure",  # SameSite=None forces it, even over http
            "Partitioned",
            "HttpOnly",
        ],
    )


def test_app_cookies_are_kept_beside_the_session_cookie(store: Store) -> None:
    client, _ = make_app(store)
    response = client.get("/theme/dark")
    assert flows.session_cookie(response, "theme").startswith("theme=dark")
    assert flows.cookie_value(response)  # the session cookie too
    assert client.get("/visit").text == "1"
