"""``session.save()`` called by the app (Beaker's idiom) writes the record
once: the response sends the cookie that save gave, without a second write
of a session nothing changed in since.

The cookie is re-sent after such a save (``docs/migrating.rst``); making
the response save the session again for it doubled the store's writes of
every page of a Beaker-style app, which calls ``save()`` on each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import session_flows as flows
import webtest

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Merge, Record

AGE = 3600


class WriteCountingStore(MemoryStore):
    """A memory store that counts the writes (create and update) it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        self.writes += 1
        return super().create(session_key, payload, expires_at)

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        self.writes += 1
        return super().update(session_key, merge, loaded)


def saving_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """``/login`` stores the user; every page then calls ``save()``; ``/late``
    changes a value after its save, which the response must still write."""
    session = environ["beaker.session"]
    if environ["PATH_INFO"] == "/login":
        session["user"] = "ada"
    session.save()
    if environ["PATH_INFO"] == "/late":
        session["seen"] = True
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(session.get("user")).encode()]


def client(store: MemoryStore) -> webtest.TestApp:
    return webtest.TestApp(
        SessionMiddleware(
            saving_app, store=store, cookie_age=AGE, environ_key="beaker.session"
        )
    )


def test_an_explicit_save_of_a_read_session_writes_once_and_sends_the_cookie() -> None:
    store = WriteCountingStore()
    app = client(store)
    app.get("/login")
    store.writes = 0
    response = app.get("/")
    assert response.text == "'ada'"
    assert f"Max-Age={AGE}" in flows.session_cookie(response)
    assert store.writes == 1  # was 2: the app's save, then the response's


def test_an_explicit_save_of_a_changed_session_writes_once() -> None:
    store = WriteCountingStore()
    app = client(store)
    response = app.get("/login")
    assert store.writes == 1  # the new record, created once
    assert store.load(flows.cookie_value(response)) is not None


def test_a_change_made_after_an_explicit_save_is_still_saved() -> None:
    store = WriteCountingStore()
    app = client(store)
    app.get("/login")
    response = app.get("/late")
    record = store.load(flows.cookie_value(response))
    assert record is not None and b"seen" in record.payload
