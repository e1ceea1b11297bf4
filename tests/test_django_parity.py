"""Django's own session tests, mirrored against wsgisession on every store.

Django runs ``SessionTestsMixin`` (``tests/sessions_tests/tests.py``) once
per backend, and ``SessionMiddlewareTests`` on its database backend; our
own suites test most of these behaviours on the memory store alone. Each
test here names the Django test it mirrors and runs on the memory, file,
SQLite and signed-cookie stores (Redis, memcached and the SQL store as
slow). Where wsgisession deliberately differs (API.md), the test asserts
our behaviour and its docstring says how and why Django's differs.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import build_store, fake_clock, get, store_argument

from wsgisession import Session, SessionMiddleware
from wsgisession.contrib import SessionProxy
from wsgisession.errors import SessionInterrupted
from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

SECRET = "django-parity-secret-7f3c9a1e5b2d8064af"
DEFAULT_AGE = 1209600
SLOW_KINDS = ["redis", "memcached", "sql-sqlite", "sql-postgresql", "sql-mariadb"]
SERVER_SIDE = ["memory", "file", "sqlite"] + [
    pytest.param(kind, marks=pytest.mark.slow) for kind in SLOW_KINDS
]
EVERY_STORE = ["cookie", *SERVER_SIDE]
#: The stores whose ``clear_expired()`` removes (and counts) expired records:
#: Redis and memcached expire theirs natively and return 0.
SWEEPING = [
    "memory",
    "file",
    "sqlite",
    pytest.param("sql-sqlite", marks=pytest.mark.slow),
]
MOMENT = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


def plain_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def built_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The store of ``kind``; ``cookie`` is the signed-cookie store."""
    if kind == "cookie":
        return SignedCookieStore(SECRET)
    return build_store(kind, store_argument(kind, request, tmp_path))


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    built = built_store(request.param, request, tmp_path)
    yield built
    built.close()


@pytest.fixture(params=SERVER_SIDE)
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    built = built_store(request.param, request, tmp_path)
    yield built
    built.close()


@pytest.fixture
def middleware(store: Store) -> SessionMiddleware:
    return SessionMiddleware(plain_app, store=store)


def saved(middleware: SessionMiddleware, **data: Any) -> str:
    """The key of a new session holding ``data``, saved."""
    session = middleware.open_session()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key


def reopened(middleware: SessionMiddleware, **data: Any) -> Session:
    """A saved session opened again, as the next request gets it: unloaded."""
    return middleware.open_session(saved(middleware, **data))


# -- SessionTestsMixin: the mapping and its two flags ----------------------------

#: (what the view does, what it returns, accessed after, modified after), on a
#: session holding {"x": 1} that a request opened and has not touched.
MAPPING_CASES: dict[str, tuple[Callable[[Session], Any], Any, bool, bool]] = {
    "test_get_empty": (lambda s: s.get("cat"), None, True, False),
    "test_store": (lambda s: s.__setitem__("cat", "dog"), None, True, True),
    "test_pop": (lambda s: s.pop("x"), 1, True, True),
    "test_pop_default": (lambda s: s.pop("cat", "none"), "none", True, False),
    "test_pop_default_named_argument": (
        lambda s: s.pop("cat", default="none"),
        "none",
        True,
        False,
    ),
    "test_setdefault": (
        lambda s: (s.setdefault("c", 2), s.setdefault("c", 3)),
        (2, 2),
        True,
        True,
    ),
    "test_setdefault(existing)": (lambda s: s.setdefault("x", 5), 1, True, False),
    "test_update": (lambda s: s.update({"u": 1}), None, True, True),
    "test_has_key": (lambda s: ("x" in s, s.has_key("x")), (True, True), True, False),
    "test_values": (lambda s: list(s.values()), [1], True, False),
    "test_keys": (lambda s: list(s.keys()), ["x"], True, False),
    "test_items": (lambda s: list(s.items()), [("x", 1)], True, False),
    "test_clear": (lambda s: (s.clear(), list(s.items()))[1], [], True, True),
}


@pytest.mark.parametrize("case", MAPPING_CASES.values(), ids=MAPPING_CASES.keys())
def test_the_mapping_sets_accessed_and_modified_as_django_does(
    middleware: SessionMiddleware,
    case: tuple[Callable[[Session], Any], Any, bool, bool],
) -> None:
    """Django's SessionTestsMixin: test_new_session, test_get_empty,
    test_store, test_pop, test_pop_default, test_pop_default_named_argument,
    test_setdefault, test_update, test_has_key, test_values, test_keys,
    test_items and test_clear, on a session loaded from the store rather
    than a new one: the flags must not depend on where the data came from."""
    operation, answer, accessed, modified = case
    session = reopened(middleware, x=1)
    assert (session.accessed, session.modified) == (False, False)
    assert operation(session) == answer
    assert (session.accessed, session.modified) == (accessed, modified)


def test_pop_without_default_raises_key_error(middleware: SessionMiddleware) -> None:
    """Django's test_pop_no_default_keyerror_raised; nothing is marked modified."""
    session = reopened(middleware, x=1)
    with pytest.raises(KeyError):
        session.pop("cat")
    assert session.modified is False


def test_an_emptied_value_list_is_empty_and_accessed(
    middleware: SessionMiddleware,
) -> None:
    """Django's test_values, first half: a new session's values() is empty
    and counts as access."""
    session = middleware.open_session()
    assert list(session.values()) == []
    assert session.accessed is True


# -- SessionTestsMixin: saving, deleting, flushing, cycling -------------------------


def test_a_saved_session_exists_and_keeps_its_data(
    middleware: SessionMiddleware,
) -> None:
    """Django's test_save and test_save_doesnt_clear_data."""
    session = middleware.open_session()
    session["a"] = "b"
    session.save()
    assert session["a"] == "b"
    assert session.session_key is not None
    assert middleware.store.exists(session.session_key) is True
    assert dict(middleware.open_session(session.session_key)) == {"a": "b"}


def test_a_deleted_record_no_longer_exists(server_store: Store) -> None:
    """Django's test_delete. Server-side stores only: ``delete()`` cannot
    revoke a signed cookie (Django's cookie backend answers exists() False
    for everything, ours True for a cookie that verifies)."""
    middleware = SessionMiddleware(plain_app, store=server_store)
    key = saved(middleware, a=1)
    server_store.delete(key)
    assert server_store.exists(key) is False
    assert dict(middleware.open_session(key)) == {}


def test_flush_deletes_the_record_and_drops_the_key(
    middleware: SessionMiddleware,
) -> None:
    """Django's test_flush: the old record is gone (on a server-side store),
    the key is None, the session accessed and modified."""
    session = reopened(middleware, foo="bar")
    previous = session.session_key
    session.flush()
    assert session.session_key is None
    assert (session.accessed, session.modified) == (True, True)
    if not isinstance(middleware.store, SignedCookieStore):  # cannot be revoked
        assert middleware.store.exists(previous) is False
        assert dict(middleware.open_session(previous)) == {}


@pytest.mark.parametrize(
    "loaded", [True, False], ids=["test_cycle", "no_session_cache"]
)
def test_cycle_key_keeps_the_data_under_a_new_key(
    middleware: SessionMiddleware, loaded: bool
) -> None:
    """Django's test_cycle and test_cycle_with_no_session_cache: a new key,
    the same items in the same order, the old record gone. Django skips
    test_cycle for its cookie backend; ours changes the cookie value too."""
    previous = saved(middleware, a="c", b="d")
    session = middleware.open_session(previous)
    if loaded:
        assert list(session.items()) == [("a", "c"), ("b", "d")]
    else:
        assert session.accessed is False
    session.cycle_key()
    assert session.session_key not in (None, previous)
    assert list(session.items()) == [("a", "c"), ("b", "d")]
    if not isinstance(middleware.store, SignedCookieStore):
        assert middleware.store.exists(previous) is False
    assert dict(middleware.open_session(session.session_key)) == {"a": "c", "b": "d"}


# -- SessionTestsMixin: the session key ------------------------------------------


@pytest.mark.parametrize(
    "offered",
    ["1", "", "1234567", "12345678", "someunknownkey", "a/b/c", "a\\b\\c", "x" * 1240],
)
def test_an_unusable_or_unknown_key_is_never_adopted(
    middleware: SessionMiddleware, offered: str
) -> None:
    """Django's test_invalid_key, test_session_key_empty_string_invalid,
    test_session_key_too_short_invalid, test_session_load_does_not_create_record,
    test_load_overlong_key and the file backend's test_invalid_key_backslash
    and _forwardslash. Django keeps a well-formed unknown key of 8 characters
    or more (test_session_key_valid_string_saved) until the load; API.md
    section 4 says such a key is never adopted, so ``"12345678"`` gives None
    here as well, and a write issues a fresh key."""
    session = middleware.open_session(offered)
    session.load()
    assert session.session_key is None
    assert dict(session) == {}
    assert middleware.store.exists(offered) is False
    session["cat"] = "dog"
    session.save()
    assert session.session_key not in (None, offered)
    assert middleware.store.exists(offered) is False


def test_the_session_key_is_read_only(middleware: SessionMiddleware) -> None:
    """Django's test_session_key_is_read_only."""
    session = middleware.open_session()
    with pytest.raises(AttributeError):
        session.session_key = "abcdefghijklmnop"  # type: ignore[misc]


# -- SessionTestsMixin: expiry, kept by every store ----------------------------------


def test_the_default_expiry_is_the_cookie_age(middleware: SessionMiddleware) -> None:
    """Django's test_default_expiry and test_custom_expiry_reset: the default,
    also under set_expiry(0) (browser close), and again after None."""
    session = reopened(middleware, x=1)
    assert session.get_expiry_age() == DEFAULT_AGE
    session.set_expiry(0)
    assert session.get_expiry_age() == DEFAULT_AGE
    session.set_expiry(10)
    session.set_expiry(None)
    assert session.get_expiry_age() == DEFAULT_AGE


def test_seconds_of_inactivity_survive_a_save(middleware: SessionMiddleware) -> None:
    """Django's test_custom_expiry_seconds, then read back from the store."""
    session = middleware.open_session()
    session.set_expiry(10)
    assert session.get_expiry_date(modification=MOMENT) == MOMENT + datetime.timedelta(
        seconds=10
    )
    assert session.get_expiry_age(modification=MOMENT) == 10
    session["x"] = 1
    session.save()
    again = middleware.open_session(session.session_key)
    assert again.get_expiry_age(modification=MOMENT) == 10


def test_a_timedelta_is_a_moment_from_the_call(middleware: SessionMiddleware) -> None:
    """Django's test_custom_expiry_timedelta (its clock patched as Django
    patches timezone.now), then read back from the store."""
    with fake_clock(MOMENT.timestamp()):
        session = middleware.open_session()
        session.set_expiry(datetime.timedelta(seconds=10))
        session["x"] = 1
        session.save()
        again = middleware.open_session(session.session_key)
        for read in (session, again):
            assert read.get_expiry_date(
                modification=MOMENT
            ) == MOMENT + datetime.timedelta(seconds=10)
            assert read.get_expiry_age(modification=MOMENT) == 10


def test_a_datetime_is_that_moment(middleware: SessionMiddleware) -> None:
    """Django's test_custom_expiry_datetime, then read back from the store
    (microseconds included: Django's database keeps them)."""
    moment = datetime.datetime.now(datetime.UTC)
    ends = moment + datetime.timedelta(seconds=10, microseconds=250)
    session = middleware.open_session()
    session.set_expiry(ends)
    session["x"] = 1
    session.save()
    again = middleware.open_session(session.session_key)
    for read in (session, again):
        assert read.get_expiry_date(modification=moment) == ends
        assert read.get_expiry_age(modification=moment) == 10


@pytest.mark.parametrize("browser_close", [False, True])
def test_expire_at_browser_close_follows_the_setting_and_the_session(
    store: Store, browser_close: bool
) -> None:
    """Django's test_get_expire_at_browser_close, under both global settings,
    with each answer read again from the store after a save."""
    middleware = SessionMiddleware(
        plain_app, store=store, expire_at_browser_close=browser_close
    )
    session = middleware.open_session()
    session["x"] = 1
    for expiry, expected in ((10, False), (0, True), (None, browser_close)):
        session.set_expiry(expiry)
        assert session.get_expire_at_browser_close() is expected
        session.save()
        again = middleware.open_session(session.session_key)
        assert again.get_expire_at_browser_close() is expected, expiry


def test_an_expiry_in_the_past_expires_at_once(middleware: SessionMiddleware) -> None:
    """Django's test_actual_expiry, which Django's cookie backend fails
    (expectedFailure, Django ticket 19201); every store of ours passes it."""
    session = middleware.open_session()
    session["foo"] = "bar"
    session.set_expiry(-datetime.timedelta(seconds=10))
    session.save()
    again = middleware.open_session(session.session_key)
    assert "foo" not in again
    assert again.session_key is None


# -- SessionTestsMixin: a logout in another request --------------------------------


def test_a_save_does_not_resurrect_a_session_deleted_meanwhile(
    server_store: Store,
) -> None:
    """Django's test_session_save_does_not_resurrect_session_logged_out_in_other_context:
    UpdateError there, SessionInterrupted here; the session stays gone.
    (Django skips it for the cookie backend, as we do.)"""
    middleware = SessionMiddleware(plain_app, store=server_store)
    first = reopened(middleware, test_data="value1")
    first.load()
    key = first.session_key
    middleware.open_session(key).flush()
    first["test_data"] = "value2"
    with pytest.raises(SessionInterrupted):
        first.save()
    assert dict(middleware.open_session(key)) == {}
    assert server_store.exists(key) is False


# -- the test cookie and is_empty() (Django's SessionBaseTests) ----------------------


def test_the_test_cookie_round_trips_through_the_store(
    middleware: SessionMiddleware,
) -> None:
    """Django's SessionBaseTests.test_test_cookie and test_is_empty, with the
    test cookie read by the next request."""
    session = middleware.open_session()
    assert session.is_empty() is True
    assert session.has_key(Session.TEST_COOKIE_NAME) is False
    session.set_test_cookie()
    session.save()
    again = middleware.open_session(session.session_key)
    assert again.test_cookie_worked() is True
    again.delete_test_cookie()
    assert again.has_key(Session.TEST_COOKIE_NAME) is False
    assert again.is_empty() is False


def test_the_test_cookie_marker_is_djangos() -> None:
    """Django's SessionBase.TEST_COOKIE_NAME and TEST_COOKIE_VALUE, which its
    test_test_cookie names, on our session and on the framework sessions."""
    for owner in (Session, SessionProxy):
        assert (owner.TEST_COOKIE_NAME, owner.TEST_COOKIE_VALUE) == (
            "testcookie",
            "worked",
        )


# -- clearsessions ------------------------------------------------------------------


@pytest.mark.parametrize("kind", SWEEPING)
def test_clear_expired_removes_past_and_idle_sessions(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Django's DatabaseSessionTests.test_clearsessions_command (one session
    in the future, one in the past: one is deleted) and the file backend's
    (a third without its own expiry, past its cookie age: also deleted)."""
    with fake_clock(MOMENT.timestamp()) as clock:
        store = built_store(kind, request, tmp_path)
        middleware = SessionMiddleware(plain_app, store=store, cookie_age=60)
        keys = {}
        for name, expiry in (("future", 3600), ("past", -3600), ("default", None)):
            session = middleware.open_session()
            session["foo"] = "bar"
            session.set_expiry(expiry)
            session.save()
            keys[name] = session.session_key
        clock.advance(120)
        assert store.clear_expired() == 2
        assert [name for name, key in keys.items() if store.exists(key)] == ["future"]
        store.close()


# -- SessionMiddlewareTests -------------------------------------------------------


def touching_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    """Django's get_response_touching_session."""
    environ["wsgisession"]["hello"] = "world"
    start_response("200 OK", [])
    return [b"Session test"]


def flushing_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    """Django's response_ending_session."""
    environ["wsgisession"].flush()
    start_response("200 OK", [])
    return [b"Session test"]


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name.lower() == "set-cookie"]


def header(headers: list[tuple[str, str]], wanted: str) -> list[str]:
    return [value for name, value in headers if name.lower() == wanted.lower()]


COOKIE_OPTIONS = {
    "test_secure_session_cookie": ({"cookie_secure": True}, "; Secure", True),
    "test_httponly_session_cookie": ({"cookie_httponly": True}, "; HttpOnly", True),
    "test_no_httponly_session_cookie": ({"cookie_httponly": False}, "HttpOnly", False),
    "test_samesite_session_cookie": (
        {"cookie_samesite": "Strict"},
        "; SameSite=Strict",
        True,
    ),
}


@pytest.mark.parametrize("case", COOKIE_OPTIONS.values(), ids=COOKIE_OPTIONS.keys())
def test_the_cookie_carries_its_options(
    store: Store, case: tuple[dict, str, bool]
) -> None:
    """Django's test_secure_session_cookie, test_httponly_session_cookie,
    test_no_httponly_session_cookie and test_samesite_session_cookie."""
    options, attribute, present = case
    _, headers = get(SessionMiddleware(touching_app, store=store, **options))
    [cookie] = set_cookies(headers)
    assert (attribute in cookie) is present, cookie


@pytest.mark.parametrize(
    "status", ["500 Internal Server Error", "503 Service Unavailable"]
)
def test_a_5xx_response_saves_nothing(store: Store, status: str) -> None:
    """Django's test_session_save_on_500 and test_session_save_on_5xx (with
    ``save_on_error`` at its default, False)."""
    written: list[Session] = []

    def failing_app(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        environ["wsgisession"]["hello"] = "world"
        written.append(environ["wsgisession"])
        start_response(status, [])
        return [b"Horrible error"]

    _, headers = get(SessionMiddleware(failing_app, store=store))
    assert set_cookies(headers) == []
    assert written[0].has_unsaved_changes() is True


def test_a_session_deleted_meanwhile_is_answered_with_a_deleting_cookie(
    server_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Django's test_session_update_error_redirect raises SessionInterrupted
    (a 400); API.md section 7 prescribes otherwise: the middleware does not
    propagate it, deletes the cookie and logs a WARNING."""
    middleware: SessionMiddleware

    def logged_out_meanwhile(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        session = environ["wsgisession"]
        session["user"] = 1
        session.save()
        middleware.open_session(session.session_key).flush()
        session["user"] = 2
        start_response("200 OK", [])
        return [b""]

    middleware = SessionMiddleware(logged_out_meanwhile, store=server_store)
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        status, headers = get(middleware)
    assert status == "200 OK"
    [cookie] = set_cookies(headers)
    assert cookie.startswith("sessionid=;") and "Max-Age=0" in cookie
    assert any(record.levelno == logging.WARNING for record in caplog.records)


@pytest.mark.parametrize(
    "options, attributes",
    [
        (
            {},
            "sessionid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax",
        ),
        (
            {"cookie_domain": ".example.local", "cookie_path": "/example/"},
            (
                "sessionid=; Domain=example.local; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
                "Max-Age=0; Path=/example/; SameSite=Lax"
            ),
        ),
    ],
    ids=[
        "test_session_delete_on_end",
        "test_session_delete_on_end_with_custom_domain_and_path",
    ],
)
def test_a_flush_deletes_the_cookie_the_request_sent(
    store: Store, options: dict[str, str], attributes: str
) -> None:
    """Django's test_session_delete_on_end and its custom domain and path
    variant: the cookie (here a malformed ``abc``) is deleted, not recreated,
    and ``Vary: Cookie`` is set. The header differs from Django's in
    spelling only: an empty value rather than ``""``, and the Domain
    without its leading dot, which browsers ignore (RFC 6265 5.2.3)."""
    _, headers = get(
        SessionMiddleware(flushing_app, store=store, **options), cookie="sessionid=abc"
    )
    assert set_cookies(headers) == [attributes]
    assert header(headers, "Vary") == ["Cookie"]


def test_a_flush_without_a_cookie_sets_none(store: Store) -> None:
    """Django's test_flush_empty_without_session_cookie_doesnt_set_cookie:
    no cookie, but ``Vary: Cookie`` (the session was accessed)."""
    _, headers = get(SessionMiddleware(flushing_app, store=store))
    assert set_cookies(headers) == []
    assert header(headers, "Vary") == ["Cookie"]


def test_an_emptied_session_is_still_saved(store: Store) -> None:
    """Django's test_empty_session_saved: a session emptied of its data but
    not flushed keeps its record (now empty) and is sent again."""

    def emptying_app(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        session = environ["wsgisession"]
        if environ["QUERY_STRING"] == "empty":
            del session["foo"]
        else:
            session["foo"] = "bar"
        start_response("200 OK", [])
        return [b""]

    middleware = SessionMiddleware(emptying_app, store=store)
    _, headers = get(middleware)
    [first] = set_cookies(headers)
    cookie = first.split(";")[0]
    _, headers = get(middleware, "empty", cookie)
    [second] = set_cookies(headers)
    assert header(headers, "Vary") == ["Cookie"]
    assert not second.startswith("sessionid=;")
    key = second.split(";")[0].split("=", 1)[1]
    if not isinstance(store, SignedCookieStore):
        assert second.split(";")[0] == cookie, "the same key, sent again"
    emptied = middleware.open_session(key)
    assert dict(emptied) == {}
    assert emptied.session_key == key
