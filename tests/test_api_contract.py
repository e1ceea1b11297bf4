"""API.md sections 2 and 7, read literally, on every store kind a session can use."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, build_store, call, store_argument

from wsgisession import Session, SessionMiddleware
from wsgisession.keys import generate_key
from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

UTC = datetime.UTC
KINDS = ["memory", "file", "sqlite", "memcached", "redis", "cookie"]
SECRET = "seaf5bf2337958ea5df1b7e2da9d9a9e"


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "cookie":
        return SignedCookieStore(SECRET)
    return build_store(kind, store_argument(kind, request, tmp_path))


@pytest.fixture(params=[kind for kind in KINDS if kind != "cookie"])
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A server-side store: one whose records a request can delete."""
    kind = request.param
    return build_store(kind, store_argument(kind, request, tmp_path))


def noop_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


def saved(middleware: SessionMiddleware, **data: object) -> Session:
    session = middleware.open_session()
    session.update(data)
    session.save()
    return session


class PlainJSON:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def dumps(self, obj: object) -> bytes:
        self.seen.append(obj)
        return json.dumps(obj).encode()

    def loads(self, data: bytes) -> object:
        return json.loads(data)


def test_a_load_that_finds_nothing_leaves_no_key(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    key = saved(middleware, a=1).session_key
    assert key is not None
    assert middleware.open_session("").session_key is None
    assert middleware.open_session("x" * 43).session_key is None
    assert middleware.open_session(key[:-1]).session_key is None
    assert middleware.open_session(key).session_key == key


def test_clear_keeps_a_keyed_session_flush_empties_it(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    session = middleware.open_session(saved(middleware, a=1).session_key)
    session.clear()
    assert not session.is_empty()
    assert session.modified
    session.flush()
    assert session.is_empty()
    assert session.session_key is None


def test_cycle_key_assigns_the_new_key_at_once(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    old = saved(middleware, a=1).session_key
    assert old is not None
    session = middleware.open_session(old)
    session.cycle_key()
    new = session.session_key
    assert new is not None and new != old
    assert dict(session) == {"a": 1}
    assert middleware.open_session(new)["a"] == 1
    if not store.client_side:
        assert not store.exists(old)


def test_negative_expiry_is_already_expired(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    session = saved(middleware, a=1)
    session.set_expiry(-10)
    assert session.get_expiry_age() == -10
    session.save()
    key = session.session_key
    assert key is None or middleware.open_session(key).session_key is None


def test_expiry_datetimes_are_aware_utc_after_a_round_trip(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    session = saved(middleware, a=1)
    moment = datetime.datetime(2100, 1, 1, 12, tzinfo=UTC)
    session.set_expiry(moment.replace(tzinfo=None))
    session.save()
    loaded = middleware.open_session(session.session_key)
    date = loaded.get_expiry_date()
    assert date == moment
    assert date.utcoffset() == datetime.timedelta(0)
    start = datetime.datetime(2100, 1, 1, 11, 0)
    assert loaded.get_expiry_age(modification=start) == 3600


def test_reading_is_not_activity(store: Store, frozen_clock: FakeClock) -> None:
    middleware = SessionMiddleware(noop_app, store, cookie_age=100)
    key = saved(middleware, a=1).session_key
    frozen_clock.advance(60)
    reader = middleware.open_session(key)
    assert reader["a"] == 1
    frozen_clock.advance(41)
    assert middleware.open_session(key).session_key is None


def test_metadata_stays_out_of_keys(store: Store) -> None:
    middleware = SessionMiddleware(noop_app, store)
    session = saved(middleware, a=1)
    session.set_expiry(60)
    session.set_test_cookie()
    session.save()
    loaded = middleware.open_session(session.session_key)
    assert set(loaded.keys()) == {"a", "testcookie"}
    assert loaded.test_cookie_worked()
    loaded.delete_test_cookie()
    with pytest.raises(KeyError):
        loaded.delete_test_cookie()


@pytest.mark.parametrize(
    "expiry", [None, 0, 60, datetime.timedelta(days=1), datetime.datetime(2100, 1, 1)]
)
def test_a_plain_json_serializer_works_on_every_store(
    store: Store, expiry: object
) -> None:
    serializer = PlainJSON()
    middleware = SessionMiddleware(noop_app, store, serializer=serializer)
    session = middleware.open_session()
    session["a"] = [1, {"b": None, "c": "d", "e": 1.5, "f": True}]
    session.set_expiry(expiry)  # type: ignore[arg-type]
    session.save()
    loaded = middleware.open_session(session.session_key)
    assert loaded["a"] == [1, {"b": None, "c": "d", "e": 1.5, "f": True}]
    loaded["g"] = 1
    loaded.save()
    assert serializer.seen
    for obj in serializer.seen:
        json.dumps(obj, allow_nan=False)  # JSON-native all the way down


def test_clear_expired_returns_what_the_api_says(
    store: Store, frozen_clock: FakeClock
) -> None:
    middleware = SessionMiddleware(noop_app, store, cookie_age=10)
    for _ in range(3):
        saved(middleware, a=1)
    frozen_clock.advance(11)
    counts_deletions = type(store).__name__ in {
        "MemoryStore",
        "FileStore",
        "SQLiteStore",
    }
    assert store.clear_expired() == (3 if counts_deletions else 0)


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "a" * 43, "a" * 5000, "\x00" * 43, "é" * 43, "a\r\nb", "../" * 15],
)
def test_exists_is_false_for_garbage(store: Store, garbage: str) -> None:
    assert store.exists(garbage) is False


# -- through the middleware -------------------------------------------------------


def session_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?set`` adds 1 to ``n``, ``?read`` reads it, ``?gone`` deletes the
    record meanwhile (another request's logout), then changes the session."""
    session = environ["wsgisession"]
    query = environ["QUERY_STRING"]
    if query == "set":
        session["n"] = session.get("n", 0) + 1
    elif query == "read":
        session.get("n")
    elif query == "gone":
        key = session.session_key
        session._store.delete(key)
        session["n"] = 99
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name == "Set-Cookie"]


def test_a_modified_session_resends_its_key_with_a_fresh_max_age(
    store: Store, frozen_clock: FakeClock
) -> None:
    middleware = SessionMiddleware(session_app, store, cookie_age=100)
    (first,) = set_cookies(call(middleware, "set", None))
    frozen_clock.advance(30)
    (again,) = set_cookies(call(middleware, "set", first.split(";")[0]))
    assert "Max-Age=100;" in again
    assert again.split("; Expires=")[1] != first.split("; Expires=")[1]
    if not store.client_side:
        assert again.split(";")[0] == first.split(";")[0]


def test_an_interrupted_save_deletes_the_cookie_and_warns(
    server_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store = server_store
    middleware = SessionMiddleware(session_app, store)
    cookie = set_cookies(call(middleware, "set", None))[0].split(";")[0]
    with caplog.at_level(logging.WARNING):
        (deleting,) = set_cookies(call(middleware, "gone", cookie))
    assert "Max-Age=0" in deleting
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert not store.exists(cookie.split("=", 1)[1])


def test_an_unknown_well_formed_id_is_never_adopted(store: Store) -> None:
    middleware = SessionMiddleware(session_app, store)
    planted = generate_key()
    session = middleware.open_session(planted)
    session["n"] = 1
    session.save()
    assert session.session_key not in (None, planted)
    (cookie,) = set_cookies(call(middleware, "set", f"sessionid={planted}"))
    assert planted not in cookie
    if not store.client_side:
        assert not store.exists(planted)


def test_without_a_store_sqlite_at_the_default_path_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tempfile

    from wsgisession import middleware as module
    from wsgisession.stores import SQLiteStore
    from wsgisession.stores.sqlite import default_path

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(module, "_default_store_logged", False)
    with caplog.at_level(logging.INFO, logger="wsgisession.middleware"):
        first = SessionMiddleware(session_app)
        second = SessionMiddleware(session_app)
    for middleware in (first, second):
        assert isinstance(middleware.store, SQLiteStore)
        assert str(middleware.store.path) == default_path()
        assert default_path().startswith(str(tmp_path))
    assert len([r for r in caplog.records if "no store given" in r.message]) == 1
    (cookie,) = set_cookies(call(first, "set", None))
    assert first.open_session(cookie.split(";")[0].split("=", 1)[1])["n"] == 1
    first.close()
    second.close()
