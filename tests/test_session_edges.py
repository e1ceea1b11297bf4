"""Edge cases of the session object, its change detection and the record's
JSON: unencodable plain values, frozensets inside sets, a change in place
in a session the app marked not accessed, and sets whose iteration order
differs from their stored one."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest
from helpers import make_store

from wsgisession import SessionMiddleware
from wsgisession.errors import UnserializableValue


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture(params=["memory", "file", "sqlite"])
def middleware(request, tmp_path: Path) -> SessionMiddleware:
    return SessionMiddleware(_app, store=make_store(request.param, tmp_path))


# -- the JSON fast path raises UnserializableValue naming the key, as the serializer's does


ODD_VALUES = {
    "lone surrogate": "\ud800",
    "int over 4300 digits": 10**5000,
}


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES.keys())
@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_an_unencodable_plain_value_raises_unserializable_value(
    middleware: SessionMiddleware, value: object, existing: bool
) -> None:
    session = middleware.open_session()
    session["user"] = "ann"
    if existing:
        session.save()
        key = session.session_key
    session["bad"] = value
    with pytest.raises(UnserializableValue) as info:
        session.save()
    assert info.value.key == "bad"
    if existing:
        assert dict(middleware.open_session(key)) == {"user": "ann"}


def test_an_unencodable_key_raises_unserializable_value(
    middleware: SessionMiddleware,
) -> None:
    session = middleware.open_session()
    session["\udcff"] = 1  # os.fsdecode() of a non-UTF-8 byte
    with pytest.raises(UnserializableValue):
        session.save()


def test_a_value_changed_in_place_to_an_unserializable_one_names_its_key(
    middleware: SessionMiddleware,
) -> None:
    """``session["cart"].append(object())``: save() raises UnserializableValue
    naming the key, as for ``session["cart"] = [object()]`` (it raised the
    serializer's bare TypeError from the change detection)."""
    existing = middleware.open_session()
    existing["user"], existing["cart"] = "ann", ["book"]
    existing.save()
    key = existing.session_key
    session = middleware.open_session(key)
    session["cart"].append(object())
    with pytest.raises(UnserializableValue) as info:
        session.save()
    assert info.value.key == "cart"
    assert dict(middleware.open_session(key)) == {"user": "ann", "cart": ["book"]}


def test_the_middleware_reports_a_value_changed_in_place_by_its_key(
    middleware: SessionMiddleware,
) -> None:
    def app(environ, start_response):
        environ["wsgisession"]["cart"].append(object())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    existing = middleware.open_session()
    existing["cart"] = ["book"]
    existing.save()
    key = existing.session_key
    wrapped = SessionMiddleware(app, store=middleware.store)
    with pytest.raises(UnserializableValue) as info:
        webtest.TestApp(wrapped).get("/", headers={"Cookie": f"sessionid={key}"})
    assert info.value.key == "cart"
    assert middleware.open_session(key)["cart"] == ["book"]


# -- a set of frozensets loads back (it loaded as corrupt: all data lost) -----


@pytest.mark.parametrize(
    "value",
    [{frozenset({1, 2})}, frozenset({frozenset({"a"})}), {(1, frozenset({2}))}],
    ids=["set of frozensets", "frozenset of frozensets", "set of tuples"],
)
def test_a_saved_set_of_frozensets_loads_back(
    middleware: SessionMiddleware, value: object
) -> None:
    session = middleware.open_session()
    session["user"] = "ann"
    session["groups"] = value
    session.save()  # accepted: so it must load
    loaded = middleware.open_session(session.session_key)
    assert dict(loaded) == {"user": "ann", "groups": value}


# -- a change in place is saved when the app clears ``accessed`` ---------------


def test_a_change_in_place_is_saved_when_the_app_clears_accessed(
    middleware: SessionMiddleware,
) -> None:
    """docs/session.rst: an app may set ``accessed = False``; "a session it
    changed is still saved"; and wsgisession notices changes in place."""

    def app(environ, start_response):
        session = environ["wsgisession"]
        session["cart"].append("pen")
        session.accessed = False  # a cacheable page: no Vary: Cookie
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    existing = middleware.open_session()
    existing["cart"] = ["book"]
    existing.save()
    key = existing.session_key
    wrapped = SessionMiddleware(app, store=middleware.store)
    webtest.TestApp(wrapped).get("/", headers={"Cookie": f"sessionid={key}"})
    assert middleware.open_session(key)["cart"] == ["book", "pen"]


# -- a set's JSON depends on its content, not on its iteration order ----------


def test_a_set_changed_and_changed_back_does_not_undo_a_concurrent_change(
    middleware: SessionMiddleware,
) -> None:
    """This request's set ends as it was: another request's value must stand."""
    setup = middleware.open_session()
    setup["tags"] = set([8, 16, 24, 0])  # noqa: C405 - inserted (and iterated) in this order
    setup.save()
    key = setup.session_key
    first = middleware.open_session(key)
    tags = first["tags"]
    tags.add(32)  # the set grows its table...
    tags.discard(32)  # ...and is the same set again, in another order
    second = middleware.open_session(key)
    second["tags"] = {"admin"}
    second.save()
    first.save()
    assert middleware.open_session(key)["tags"] == {"admin"}


def test_a_set_held_across_a_merged_save_is_still_watched(
    middleware: SessionMiddleware,
) -> None:
    """A value received, saved while another request saved another key, then
    changed in place: the change is saved (as for a list)."""
    setup = middleware.open_session()
    setup["tags"] = {63, 7, 25}
    setup["n"] = 0
    setup.save()
    key = setup.session_key
    first = middleware.open_session(key)
    tags = first["tags"]
    second = middleware.open_session(key)
    second["n"] = 1
    second.save()
    first.save()  # merged with second's change
    tags.add(99)
    first.save()
    assert middleware.open_session(key)["tags"] == {63, 7, 25, 99}
