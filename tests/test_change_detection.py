"""Changes made in place, seen through every accessor; and what is serialized when.

A mutable value is snapshotted when the session first hands it to the
request, so a change made to it in place is saved (and merged by key),
while a value the request never received is never serialized. A save that
changes nothing encodes the record once, for its new save time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import fake_clock, saved_session

from wsgisession import Session, SessionMiddleware
from wsgisession.config import Settings
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Merge, Record


class CountingSerializer(TaggedJSONSerializer):
    """The default serializer, counting its calls."""

    def __init__(self) -> None:
        self.dumped: list[Any] = []
        self.loads_calls = 0

    def dumps(self, obj: Any) -> bytes:
        self.dumped.append(obj)
        return super().dumps(obj)

    def loads(self, data: bytes) -> Any:
        self.loads_calls += 1
        return super().loads(data)


def reopen(store: MemoryStore, key: str) -> dict[str, Any]:
    return dict(Session(store, session_key=key).items())


# Each one hands the request the value of "cart" by a different accessor.
RECEIVE: dict[str, Callable[[Session], Any]] = {
    "getitem": lambda s: s["cart"],
    "get": lambda s: s.get("cart"),
    "setdefault": lambda s: s.setdefault("cart", []),
    "values": lambda s: next(v for v in s.values() if isinstance(v, list)),
    "items": lambda s: dict(s.items())["cart"],
    "items iterated": lambda s: next(v for k, v in s.items() if k == "cart"),
    "dict()": lambda s: dict(s)["cart"],
    "copy by keys": lambda s: {k: s[k] for k in s}["cart"],
}


@pytest.mark.parametrize("receive", RECEIVE.values(), ids=RECEIVE.keys())
def test_a_change_in_place_is_saved_whatever_the_accessor(receive) -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], user="alice")
    session = Session(store, session_key=key)
    receive(session).append("pen")
    assert session.detect_changes()
    session.save()
    assert reopen(store, key) == {"cart": ["book", "pen"], "user": "alice"}


@pytest.mark.parametrize("receive", RECEIVE.values(), ids=RECEIVE.keys())
def test_a_change_in_place_is_merged_by_key(receive) -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], theme="light")
    first = Session(store, session_key=key)
    cart = receive(first)
    second = Session(store, session_key=key)
    second["theme"] = "dark"
    second.save()
    cart.append("pen")
    first.save()
    assert reopen(store, key) == {"cart": ["book", "pen"], "theme": "dark"}


def test_an_unchanged_value_received_is_not_written_back_over_a_newer_one() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], n=1)
    reader = Session(store, session_key=key)
    assert reader["cart"] == ["book"]
    writer = Session(store, session_key=key)
    writer["cart"].append("pen")
    writer.save()
    reader["n"] = 2
    reader.save()
    assert reopen(store, key) == {"cart": ["book", "pen"], "n": 2}


def test_a_change_after_a_save_is_seen_by_the_next_save() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], tags={"a"})
    session = Session(store, session_key=key)
    cart = session["cart"]
    session["box"] = box = [1]  # set, not received: the request holds it too
    session.save()
    cart.append("pen")
    box.append(2)
    assert session.has_unsaved_changes() is False  # not yet looked at
    assert session.detect_changes()
    session.save()
    assert reopen(store, key) == {"cart": ["book", "pen"], "tags": {"a"}, "box": [1, 2]}


def test_a_change_after_a_save_is_seen_when_every_value_was_received() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"])
    session = Session(store, session_key=key)
    values = session.values()
    session.save()
    next(iter(values)).append("pen")
    session.save()
    assert reopen(store, key) == {"cart": ["book", "pen"]}


def test_cycle_key_carries_a_change_made_in_place() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"])
    session = Session(store, session_key=key)
    session["cart"].append("pen")
    session.cycle_key()
    assert session.session_key != key
    assert reopen(store, session.session_key) == {"cart": ["book", "pen"]}


def test_bind_user_carries_a_change_made_in_place() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"])
    session = Session(store, session_key=key)
    session["cart"].append("pen")
    session.bind_user("alice")
    assert session.session_key != key
    reopened = Session(store, session_key=session.session_key)
    assert reopened.user_id == "alice"
    assert dict(reopened.items()) == {"cart": ["book", "pen"]}


def test_a_value_popped_or_cleared_needs_no_snapshot() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], other=[1])
    session = Session(store, session_key=key)
    session.pop("cart").append("pen")
    session.clear()
    session["other"] = [2]
    session.save()
    assert reopen(store, key) == {"other": [2]}


def middleware_on(
    store: MemoryStore, view: Callable[[Session], object], **options: Any
) -> tuple[Callable[[str], list[tuple[str, str]]], CountingSerializer]:
    """A middleware with a counting serializer, and a call for one request."""
    serializer = CountingSerializer()

    def app(environ, start_response):
        view(environ["wsgisession"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, store, serializer=serializer, **options)

    def request(key: str) -> list[tuple[str, str]]:
        sent: list[tuple[str, str]] = []

        def start_response(status, headers, exc_info=None):
            sent.extend(headers)

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "HTTP_COOKIE": f"sessionid={key}",
            "wsgi.url_scheme": "http",
        }
        b"".join(middleware(environ, start_response))
        return sent

    return request, serializer


def test_reading_one_immutable_value_serializes_nothing() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], prefs={"theme": "dark"}, user="alice")
    request, serializer = middleware_on(store, lambda s: s["user"])
    before = store.load(key)
    headers = request(key)
    assert serializer.dumped == []
    assert serializer.loads_calls == 1
    assert ("Vary", "Cookie") in headers
    assert not [h for h in headers if h[0] == "Set-Cookie"]
    assert store.load(key) == before


def test_reading_a_mutable_value_serializes_it_twice_and_writes_nothing() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], prefs={"theme": "dark"}, user="alice")
    request, serializer = middleware_on(store, lambda s: s["cart"])
    before = store.load(key)
    request(key)
    assert serializer.dumped == [["book"], ["book"]]  # snapshot, then comparison
    assert store.load(key) == before


def test_a_write_serializes_the_record_and_no_value_it_did_not_receive() -> None:
    store = MemoryStore()
    key = saved_session(store, cart=["book"], prefs={"theme": "dark"}, n=1)

    def view(session: Session) -> None:
        session["n"] += 1

    request, serializer = middleware_on(store, view)
    request(key)
    assert len(serializer.dumped) == 1  # the record, nothing else
    assert serializer.dumped[0]["data"] == {
        "cart": ["book"],
        "prefs": {"theme": "dark"},
        "n": 2,
    }


def test_saving_an_unchanged_session_records_the_save_time_and_a_new_expiry() -> None:
    """The record says when it was last saved (reissue_time, listings): an
    unchanged save encodes the record once, with the new time, and nothing else."""
    store = MemoryStore()
    with fake_clock(1_000_000.0) as clock:
        key = saved_session(store, cart=["book"], user="alice")
        before = store.load(key)
        assert before is not None
        clock.advance(60)
        settings = Settings(save_every_request=True)
        request, serializer = middleware_on(
            store, lambda s: s["user"], settings=settings
        )
        headers = request(key)
        after = store.load(key)
    assert [record["saved"] for record in serializer.dumped] == [1_000_060.0]
    assert serializer.dumped[0]["data"] == {"cart": ["book"], "user": "alice"}
    assert [h for h in headers if h[0] == "Set-Cookie"]
    assert after is not None
    assert after.payload != before.payload
    assert after.expires_at == before.expires_at + 60
    assert Session(store, session_key=key).reissue_due() is False


class FailingDelete(MemoryStore):
    """A store whose delete and update fail (down) while ``failing`` is set
    (a key change deletes the old record by an update, reading it)."""

    failing = False

    def delete(self, session_key: str) -> None:
        if self.failing:
            raise ConnectionError("store down")
        super().delete(session_key)

    def delete_record(self, record_name: str) -> bool:
        if self.failing:  # cycle_key() deletes the old record by its name
            raise ConnectionError("store down")
        return super().delete_record(record_name)

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        if self.failing:
            raise ConnectionError("store down")
        return super().update(session_key, merge, loaded)


def test_cycle_key_whose_old_record_cannot_go_still_watches_the_moved_values() -> None:
    """The new record holds everything once created: a failure to delete the
    old one must not leave its changes looking unsaved, nor stop a later
    change made in place from being seen."""
    store = FailingDelete()
    first = Session(store)
    first["cart"] = [1]
    first.save()
    session = Session(store, session_key=first.session_key)
    session["cart"].append(2)
    session["n"] = 1
    store.failing = True
    with pytest.raises(ConnectionError):
        session.cycle_key()
    store.failing = False
    assert session.session_key != first.session_key
    assert dict(Session(store, session_key=session.session_key)) == {
        "cart": [1, 2],
        "n": 1,
    }
    assert not session.has_unsaved_changes()
    session["cart"].append(3)
    assert session.detect_changes()
