"""Session flows every framework test runs the same way, through WebTest.

Each framework module builds its own app with ``/visit``, ``/login``,
``/logout`` and ``/whoami`` views and passes the WebTest client, the
middleware, the store and small callables for the steps that differ (how to
log in or out: Pyramid needs a CSRF token). The flows then check what every
framework must do alike: visits are counted, login cycles the key, logout
deletes the cookie, and a replayed old cookie sees nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import webtest

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore, SQLiteStore
from wsgisession.stores.base import Store

STORE_KINDS = ["memory", "sqlite"]
"""The stores every framework runs its flows on (the ``store`` fixture's params)."""


def make_store(kind: str, tmp_path: Path) -> Store:
    """A fresh store of ``kind`` (one of ``STORE_KINDS``), files under ``tmp_path``."""
    if kind == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "sessions.sqlite3")


Login = Callable[[webtest.TestApp, str], webtest.TestResponse]
"""Logs ``user`` in through the client; the login response."""

Logout = Callable[[webtest.TestApp], webtest.TestResponse]
"""Logs out through the client; the logout response."""


def session_cookie(response: webtest.TestResponse, name: str = "sessionid") -> str:
    """The ``Set-Cookie`` header for ``name``; fails unless there is exactly one."""
    headers: list[str] = [
        header
        for header in response.headers.getall("Set-Cookie")
        if header.startswith(name + "=")
    ]
    assert len(headers) == 1, response.headers.getall("Set-Cookie")
    return headers[0]


def cookie_value(response: webtest.TestResponse, name: str = "sessionid") -> str:
    """The value the response sets for cookie ``name``."""
    return session_cookie(response, name).split(";", 1)[0].split("=", 1)[1]


def assert_cookie_attributes(
    header: str, present: Iterable[str], absent: Iterable[str] = ()
) -> None:
    """``header`` has every attribute of ``present`` as written, none named in ``absent``.

    ``present`` holds whole attributes (``"Max-Age=3600"``, ``"Secure"``);
    ``absent`` holds attribute names.
    """
    parts = [part.strip() for part in header.split(";")[1:]]
    missing = [attribute for attribute in present if attribute not in parts]
    assert missing == [], header
    names = {part.split("=", 1)[0] for part in parts}
    assert names.isdisjoint(absent), header


def post_login(client: webtest.TestApp, user: str) -> webtest.TestResponse:
    """The plain login: a form post of ``user`` to ``/login``."""
    return client.post("/login", {"user": user})


def post_logout(client: webtest.TestApp) -> webtest.TestResponse:
    """The plain logout: an empty post to ``/logout``."""
    return client.post("/logout")


def check_visits_are_counted(client: webtest.TestApp) -> None:
    """Three visits in one cookie jar count 1, 2, 3."""
    assert [client.get("/visit").text for _ in range(3)] == ["1", "2", "3"]


def check_old_key_is_dead(
    client: webtest.TestApp, middleware: SessionMiddleware, store: Store, key: str
) -> None:
    """``key`` is gone from the store, opens empty, and a replayed cookie sees nothing."""
    assert not store.exists(key)
    stale = middleware.open_session(key)
    assert stale.get("user") is None
    assert stale.session_key is None
    replay = webtest.TestApp(client.app)
    replay.set_cookie("sessionid", key)
    assert replay.get("/whoami").text == "None"


def check_login_cycles_the_key(
    client: webtest.TestApp,
    middleware: SessionMiddleware,
    store: Store,
    login: Login = post_login,
) -> None:
    """Login gives a new key that keeps the data; the old key loads nothing."""
    old_key = cookie_value(client.get("/visit"))
    new_key = cookie_value(login(client, "ada"))
    assert new_key != old_key
    assert client.get("/whoami").text == "ada"
    assert client.get("/visit").text == "2"  # the data moved to the new key
    check_old_key_is_dead(client, middleware, store, old_key)


def check_logout_deletes_the_cookie(
    client: webtest.TestApp,
    middleware: SessionMiddleware,
    store: Store,
    login: Login = post_login,
    logout: Logout = post_logout,
) -> None:
    """Logout sends a deleting cookie; the logged-in key loads nothing after."""
    key = cookie_value(login(client, "ada"))
    deleting = session_cookie(logout(client))
    assert deleting.startswith("sessionid=;")
    assert "Max-Age=0" in deleting
    assert client.get("/whoami").text == "None"
    check_old_key_is_dead(client, middleware, store, key)
