"""Django's session semantics at their edges: a value changed in place into
one the serializer refuses, and a ``cycle_key()`` racing a logout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import make_store

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted, UnserializableValue
from wsgisession.session import Session
from wsgisession.stores import MemoryStore


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture(params=["memory", "file", "sqlite"])
def middleware(request, tmp_path: Path) -> SessionMiddleware:
    return SessionMiddleware(_app, store=make_store(request.param, tmp_path))


def stored(middleware: SessionMiddleware, **data: object) -> str:
    session = middleware.open_session()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key


# -- a change in place the serializer refuses names its key, as an assignment does

REFUSED = {
    "object": object(),
    "lone surrogate": "\ud800",
    "int over 4300 digits": 10**5000,
}

SAVES: dict[str, Callable[[Session], None]] = {
    "save": Session.save,
    "cycle_key": Session.cycle_key,
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("save", SAVES.values(), ids=SAVES.keys())
def test_a_value_changed_in_place_into_a_refused_one_raises_unserializable_value(
    middleware: SessionMiddleware, value: object, save: Callable[[Session], None]
) -> None:
    """docs/session.rst: a value the serializer refuses makes the save raise
    UnserializableValue naming its key. ``session["notes"].append(x)`` with x
    from a request (a JSON body may hold "\\ud800") raised a bare TypeError,
    UnicodeEncodeError or ValueError from the change detection instead."""
    key = stored(middleware, notes=["first"], user="ann")
    session = middleware.open_session(key)
    session["notes"].append(value)
    with pytest.raises(UnserializableValue) as info:
        save(session)
    assert info.value.key == "notes"
    assert dict(middleware.open_session(key)) == {"notes": ["first"], "user": "ann"}


# -- a cycle_key() in flight cannot bring back a session logged out meanwhile


def test_cycle_key_in_flight_cannot_resurrect_a_session_deleted_meanwhile(
    middleware: SessionMiddleware,
) -> None:
    """docs/session.rst: a session deleted by another request (a logout in
    another tab) is not brought back by this request's save. A cycle_key()
    (a login, a step-up) stored the logged-out data under a new key and
    sent its cookie: the user stayed logged in after logging out."""
    key = stored(middleware, user_id=42)
    in_flight = middleware.open_session(key)
    in_flight.load()
    middleware.open_session(key).flush()  # the user logs out in another tab
    with pytest.raises(SessionInterrupted):
        in_flight.cycle_key()
    assert in_flight.session_key is None
    assert dict(in_flight) == {}
    store = middleware.store
    if isinstance(store, MemoryStore):
        assert store._records == {}, "the data was stored under a new key"


def test_cycle_key_still_moves_a_live_session(middleware: SessionMiddleware) -> None:
    key = stored(middleware, user_id=42)
    session = middleware.open_session(key)
    session.cycle_key()
    assert session.session_key not in (None, key)
    assert not middleware.store.exists(key)
    assert dict(middleware.open_session(session.session_key)) == {"user_id": 42}
