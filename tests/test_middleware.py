"""The middleware end to end with WebTest, on the memory, file and SQLite stores."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import webtest
from werkzeug.http import parse_date

from wsgisession import SessionMiddleware, cookies
from wsgisession.config import Settings
from wsgisession.errors import ConfigError
from wsgisession.keys import generate_key
from wsgisession.stores import FileStore, MemoryStore, SignedCookieStore, SQLiteStore
from wsgisession.stores.base import Store

Environ = dict[str, Any]


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "file":
        return FileStore(tmp_path / "sessions")
    return SQLiteStore(tmp_path / "sessions.sqlite3")


def view_app(view: Callable[[Any, Environ], Any], status: str = "200 OK", headers=()):
    """A plain WSGI app that calls ``view(session, environ)`` and returns its text."""

    def app(environ: Environ, start_response):
        body = view(environ["wsgisession"], environ)
        start_response(status, [("Content-Type", "text/plain"), *headers])
        return [str(body).encode()]

    return app


def counter(session, environ) -> int:
    session["visits"] = session.get("visits", 0) + 1
    return session["visits"]


def share_cookies(source: webtest.TestApp, target: webtest.TestApp) -> None:
    """Give ``target`` the cookies ``source`` holds, as one browser would."""
    for name, value in source.cookies.items():
        target.set_cookie(name, value)


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return response.headers.getall("Set-Cookie")


def session_cookie_value(
    response: webtest.TestResponse, name: str = "sessionid"
) -> str | None:
    for header in set_cookies(response):
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    return None


def test_visits_persist_across_requests(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    assert client.get("/").text == "1"
    assert client.get("/").text == "2"
    assert client.get("/").text == "3"


class CountingMemoryStore(MemoryStore):
    """A real MemoryStore that also counts the calls made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def load(self, session_key):
        self.calls.append("load")
        return super().load(session_key)

    def create(self, session_key, payload, expires_at):
        self.calls.append("create")
        return super().create(session_key, payload, expires_at)

    def update(self, session_key, merge, loaded):
        self.calls.append("update")
        return super().update(session_key, merge, loaded)


def test_untouched_request_has_no_io_and_no_header_changes() -> None:
    store = CountingMemoryStore()
    key_app = SessionMiddleware(view_app(counter), store=store)
    client = webtest.TestApp(key_app)
    client.get("/")
    store.calls.clear()
    untouched = webtest.TestApp(
        SessionMiddleware(
            view_app(lambda s, e: "hi", headers=[("X-A", "1")]), store=store
        )
    )
    share_cookies(client, untouched)
    response = untouched.get("/")
    assert store.calls == []
    assert list(response.headers.items()) == [
        ("Content-Type", "text/plain"),
        ("X-A", "1"),
        ("Content-Length", "2"),
    ]


def test_untouched_file_and_sqlite_stores_stay_untouched(tmp_path) -> None:
    for store in (
        FileStore(tmp_path / "f"),
        SQLiteStore(tmp_path / "db" / "s.sqlite3"),
    ):
        before = sorted(os.walk(tmp_path))
        client = webtest.TestApp(
            SessionMiddleware(view_app(lambda s, e: "hi"), store=store)
        )
        client.set_cookie("sessionid", generate_key())
        response = client.get("/")
        assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
        assert sorted(os.walk(tmp_path)) == before


def test_read_only_request_writes_nothing() -> None:
    store = CountingMemoryStore()
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    client.get("/")
    reader = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: s.get("visits")), store=store)
    )
    share_cookies(client, reader)
    store.calls.clear()
    response = reader.get("/")
    assert response.text == "1"
    assert store.calls == ["load"]
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"


def cookie_attributes(header: str) -> dict[str, str]:
    """The attributes of a ``Set-Cookie`` header, its ``name=value`` pair left
    out: a random key may hold any short text ("GMT" one time in 6,400)."""
    return dict(part.strip().partition("=")[::2] for part in header.split(";")[1:])


def assert_new_session_cookie(header: str) -> None:
    """The attributes of a new session's cookie under the default settings."""
    attributes = cookie_attributes(header)
    assert attributes.keys() == {"Expires", "Max-Age", "HttpOnly", "Path", "SameSite"}
    assert attributes["Max-Age"] == "1209600"
    assert attributes["Expires"].endswith(" GMT")
    assert (attributes["Path"], attributes["SameSite"]) == ("/", "Lax")


def test_new_session_cookie_attributes(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    response = client.get("/")
    value = session_cookie_value(response)
    assert value is not None and len(value) == 43
    assert_new_session_cookie(set_cookies(response)[0])
    assert response.headers["Vary"] == "Cookie"


def new_cookie_whose_key_holds(text: str) -> str:
    """The ``Set-Cookie`` header of a new session whose random key holds ``text``."""
    middleware = SessionMiddleware(view_app(counter), store=MemoryStore())
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        seen["cookie"] = dict(headers)["Set-Cookie"]

    for _ in range(200_000):  # "GMT": misses all with a chance of 1e-13
        b"".join(middleware({"REQUEST_METHOD": "GET"}, start_response))
        if text in seen["cookie"].split(";", 1)[0]:
            return str(seen["cookie"])
    raise AssertionError(f"no key held {text!r}")


@pytest.mark.slow
def test_new_session_cookie_attributes_whatever_the_key_holds() -> None:
    """A key holding "GMT" made ``header.count("GMT") == 1`` fail at random."""
    assert_new_session_cookie(new_cookie_whose_key_holds("GMT"))


def test_expires_matches_max_age_across_seconds() -> None:
    """The cached Expires date follows the clock and the age it is asked for."""
    before = int(time.time())
    for max_age in (60, 1209600, 60):
        header = cookies.session_cookie(Settings(), "x" * 43, max_age, secure=False)[1]
        expires = header.split("Expires=")[1].split(";")[0]
        moment = parse_date(expires)
        assert moment is not None
        assert before + max_age <= moment.timestamp() <= time.time() + max_age


def test_cookie_options() -> None:
    app = SessionMiddleware(
        view_app(counter),
        store=MemoryStore(),
        cookie_name="sid",
        cookie_domain="example.com",
        cookie_path="/app",
        cookie_httponly=False,
        cookie_samesite="None",
        cookie_age=60,
        cookie_partitioned=True,
    )
    header = set_cookies(webtest.TestApp(app).get("/"))[0]
    assert header.startswith("sid=")
    assert "Domain=example.com" in header and "Path=/app" in header
    assert "Max-Age=60" in header and "SameSite=None" in header
    assert "Secure" in header and "Partitioned" in header
    assert "HttpOnly" not in header


@pytest.mark.parametrize(
    ("setting", "scheme", "expected"),
    [
        (True, "http", True),
        (False, "https", False),
        ("auto", "https", True),
        ("auto", "http", False),
    ],
)
def test_cookie_secure(setting, scheme: str, expected: bool) -> None:
    app = SessionMiddleware(
        view_app(counter), store=MemoryStore(), cookie_secure=setting
    )
    response = webtest.TestApp(app).get("/", extra_environ={"wsgi.url_scheme": scheme})
    assert ("Secure" in set_cookies(response)[0]) is expected


def test_samesite_false_omits_attribute() -> None:
    app = SessionMiddleware(
        view_app(counter), store=MemoryStore(), cookie_samesite=False
    )
    assert "SameSite" not in set_cookies(webtest.TestApp(app).get("/"))[0]


def test_browser_close_cookie_has_no_age() -> None:
    def view(session, environ):
        session["a"] = 1
        session.set_expiry(0)
        return "ok"

    header = set_cookies(
        webtest.TestApp(SessionMiddleware(view_app(view), store=MemoryStore())).get("/")
    )[0]
    assert "Max-Age" not in header and "Expires" not in header
    app = SessionMiddleware(
        view_app(counter), store=MemoryStore(), expire_at_browser_close=True
    )
    header = set_cookies(webtest.TestApp(app).get("/"))[0]
    assert "Max-Age" not in header and "Expires" not in header


def test_modified_session_resends_same_key_with_fresh_age(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    first = session_cookie_value(client.get("/"))
    second_response = client.get("/")
    assert session_cookie_value(second_response) == first
    assert "Max-Age=1209600" in set_cookies(second_response)[0]


def test_server_error_saves_nothing(store: Store) -> None:
    client = webtest.TestApp(
        SessionMiddleware(
            view_app(counter, status="500 Internal Server Error"), store=store
        )
    )
    response = client.get("/", status=500)
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"


def test_exception_before_and_after_start_response_saves_nothing(store: Store) -> None:
    ok = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    ok.get("/")

    def failing_body(environ, start_response):
        environ["wsgisession"]["visits"] = 100
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            yield b"partial"
            raise RuntimeError("boom in the body")

        return body()

    def failing_view(environ, start_response):
        environ["wsgisession"]["visits"] = 100
        raise RuntimeError("boom in the view")

    for app in (failing_body, failing_view):
        client = webtest.TestApp(SessionMiddleware(app, store=store), lint=False)
        share_cookies(ok, client)
        with pytest.raises(RuntimeError, match="boom"):
            client.get("/")
    assert ok.get("/").text == "2"


def test_write_after_start_response_is_persisted(store: Store) -> None:
    def late(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        environ["wsgisession"]["late"] = "1"
        return [b"ok"]

    def streamed(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            yield b"a"
            environ["wsgisession"]["streamed"] = "2"
            yield b"b"

        return body()

    client = webtest.TestApp(SessionMiddleware(late, store=store))
    assert session_cookie_value(client.get("/")) is not None
    stream_client = webtest.TestApp(SessionMiddleware(streamed, store=store))
    share_cookies(client, stream_client)
    stream_client.get("/")
    reader = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: sorted(s.items())), store=store)
    )
    share_cookies(client, reader)
    assert reader.get("/").text == "[('late', '1'), ('streamed', '2')]"


def test_modified_flag_alone_saves_like_django(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    first = set_cookies(client.get("/"))[0]

    def touch(session, environ):
        session.modified = True  # no other use of the session
        return "ok"

    toucher = webtest.TestApp(SessionMiddleware(view_app(touch), store=store))
    share_cookies(client, toucher)
    response = toucher.get("/")
    assert session_cookie_value(response) == session_cookie_value_from(first)
    assert response.headers["Vary"] == "Cookie"
    assert client.get("/").text == "2"


def test_generator_app_calling_start_response_when_iterated(store: Store) -> None:
    def generator_app(environ, start_response):
        session = environ["wsgisession"]
        session["visits"] = session.get("visits", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield str(session["visits"]).encode()

    client = webtest.TestApp(SessionMiddleware(generator_app, store=store))
    assert client.get("/").text == "1"
    assert client.get("/").text == "2"


def test_streamed_new_session_gets_cookie_before_body(store: Store) -> None:
    def streamed(environ, start_response):
        environ["wsgisession"]["a"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"b", b"c"])

    client = webtest.TestApp(SessionMiddleware(streamed, store=store))
    response = client.get("/")
    assert response.text == "abc"
    reader = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: s.get("a")), store=store)
    )
    share_cookies(client, reader)
    assert reader.get("/").text == "1"


def test_flush_deletes_cookie_and_record(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    key = session_cookie_value(client.get("/"))
    logout = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: s.flush()), store=store)
    )
    share_cookies(client, logout)
    response = logout.get("/")
    header = set_cookies(response)[0]
    assert header.startswith("sessionid=;")
    assert "Max-Age=0" in header and "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header
    assert "Path=/" in header and "SameSite=Lax" in header
    assert response.headers["Vary"] == "Cookie"
    assert not store.exists(key)  # type: ignore[arg-type]


def test_deleting_cookie_has_same_attributes_as_setting_cookie() -> None:
    options: dict[str, Any] = {
        "cookie_domain": "example.com",
        "cookie_path": "/p",
        "cookie_secure": True,
        "cookie_samesite": "Strict",
    }
    store = MemoryStore()
    client = webtest.TestApp(
        SessionMiddleware(view_app(counter), store=store, **options)
    )
    set_header = set_cookies(
        client.get("/p/", extra_environ={"HTTP_HOST": "example.com"})
    )[0]
    logout = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: s.flush()), store=store, **options)
    )
    key = session_cookie_value_from(set_header)
    response = logout.get("/p/", headers={"Cookie": f"sessionid={key}"})
    delete_header = set_cookies(response)[0]
    for attribute in ("Domain=example.com", "Path=/p", "Secure", "SameSite=Strict"):
        assert attribute in set_header and attribute in delete_header


def session_cookie_value_from(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def test_unknown_cookie_read_is_deleted_untouched_is_left(store: Store) -> None:
    forged = generate_key()
    reader = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: s.get("a")), store=store)
    )
    response = reader.get("/", headers={"Cookie": f"sessionid={forged}"})
    assert set_cookies(response)[0].startswith("sessionid=;")
    untouched = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: "x"), store=store)
    )
    response = untouched.get("/", headers={"Cookie": f"sessionid={forged}"})
    assert "Set-Cookie" not in response.headers


def test_a_subrequest_leaves_an_unknown_cookie_it_only_read(store: Store) -> None:
    """A page's fetch() or image may carry a key that a parallel login just
    cycled away: its answer must not delete the browser's newer cookie
    (tests/test_browser_cookie_races.py shows it in Chromium)."""
    forged = generate_key()

    def view(session, environ):
        if environ["PATH_INFO"] == "/write":
            session.modified = True
        return str(session.get("a"))

    client = webtest.TestApp(SessionMiddleware(view_app(view), store=store))
    cookie = {"Cookie": f"sessionid={forged}"}
    fetch = {**cookie, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    response = client.get("/", headers=fetch)
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"
    navigation = {**cookie, "Sec-Fetch-Mode": "navigate"}
    for headers in (navigation, cookie):  # a page load, or an older browser
        response = client.get("/", headers=headers)
        assert set_cookies(response)[0].startswith("sessionid=;")
    response = client.get("/write", headers=fetch)  # it changed the session
    assert set_cookies(response)[0].startswith("sessionid=;")


def test_a_subrequest_still_deletes_a_forged_signed_cookie() -> None:
    """A signed cookie's key never goes stale by a parallel cycle_key():
    API.md's deleting cookie for a forged one holds for every request."""
    store = SignedCookieStore("subrequest-" + "k" * 40)
    client = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: str(s.get("a"))), store=store)
    )
    headers = {"Cookie": "sessionid=forged.value", "Sec-Fetch-Mode": "cors"}
    assert set_cookies(client.get("/", headers=headers))[0].startswith("sessionid=;")


def test_unknown_cookie_is_never_adopted(store: Store) -> None:
    forged = generate_key()
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    response = client.get("/", headers={"Cookie": f"sessionid={forged}"})
    assert session_cookie_value(response) not in (None, "", forged)
    assert not store.exists(forged)


def test_save_every_request_with_unknown_cookie_creates_nothing(store: Store) -> None:
    forged = generate_key()
    app = SessionMiddleware(
        view_app(lambda s, e: "x"), store=store, save_every_request=True
    )
    response = webtest.TestApp(app).get("/", headers={"Cookie": f"sessionid={forged}"})
    assert not any(
        h.startswith("sessionid=") and "Max-Age=0" not in h
        for h in set_cookies(response)
    )
    assert not store.exists(forged)
    assert store.clear_expired() == 0


def test_save_every_request_resends_cookie_for_untouched_session(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    client.get("/")
    app = SessionMiddleware(
        view_app(lambda s, e: "x"), store=store, save_every_request=True
    )
    again = webtest.TestApp(app)
    share_cookies(client, again)
    response = again.get("/")
    assert session_cookie_value(response) == client.cookies["sessionid"]
    assert response.headers["Vary"] == "Cookie"


def test_junk_in_cookie_header_does_not_hide_session(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    key = session_cookie_value(client.get("/"))
    plain = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    junk = f'a=1; =; garbage; "x=;;; b="unterminated; sessionid={key}; c=\\x00'
    assert plain.get("/", headers={"Cookie": junk}).text == "2"


def test_duplicate_cookies_take_first_valid(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    key = session_cookie_value(client.get("/"))
    plain = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    assert (
        plain.get("/", headers={"Cookie": f"sessionid=../../x; sessionid={key}"}).text
        == "2"
    )


def test_vary_is_merged_with_existing_header() -> None:
    app = SessionMiddleware(
        view_app(counter, headers=[("Vary", "Accept-Encoding")]), store=MemoryStore()
    )
    assert webtest.TestApp(app).get("/").headers["Vary"] == "Accept-Encoding, Cookie"
    app = SessionMiddleware(
        view_app(counter, headers=[("Vary", "cookie")]), store=MemoryStore()
    )
    assert webtest.TestApp(app).get("/").headers.getall("Vary") == ["cookie"]


@pytest.mark.parametrize("existing", [False, True])
def test_an_app_that_clears_accessed_still_has_its_changes_saved(
    existing: bool,
) -> None:
    """As in Django, ``accessed`` is only about ``Vary: Cookie``."""
    store = MemoryStore()

    def view(session, environ):
        session["cart"] = "new"
        session.accessed = False  # an app keeping its page cacheable
        return "ok"

    client = webtest.TestApp(SessionMiddleware(view_app(view), store=store))
    headers = {}
    if existing:
        old = SessionMiddleware(view_app(view), store=store).open_session()
        old["cart"] = "old"
        old.save()
        headers = {"Cookie": f"sessionid={old.session_key}"}
    response = client.get("/", headers=headers)
    (cookie,) = set_cookies(response)
    key = cookie.split(";")[0].split("=", 1)[1]
    assert (
        SessionMiddleware(view_app(view), store=store).open_session(key)["cart"]
        == "new"
    )
    assert len(store) == 1


def test_a_stale_cookie_is_deleted_when_the_app_only_marks_the_session_modified() -> (
    None
):
    def view(session, environ):
        session.modified = True  # Pyramid's changed(), without a read
        return "ok"

    client = webtest.TestApp(SessionMiddleware(view_app(view), store=MemoryStore()))
    response = client.get("/", headers={"Cookie": f"sessionid={generate_key()}"})
    (cookie,) = set_cookies(response)
    assert cookie.startswith("sessionid=;") and "Max-Age=0" in cookie


def test_save_every_request_saves_when_the_app_clears_accessed() -> None:
    store = MemoryStore()

    def view(session, environ):
        session.get("user")
        session.accessed = False
        return "ok"

    middleware = SessionMiddleware(view_app(view), store=store, save_every_request=True)
    existing = middleware.open_session()
    existing["user"] = "u1"
    existing.save()
    client = webtest.TestApp(middleware)
    response = client.get("/", headers={"Cookie": f"sessionid={existing.session_key}"})
    (cookie,) = set_cookies(response)
    assert cookie.startswith(f"sessionid={existing.session_key};")


def test_session_interrupted_deletes_cookie_and_warns(store: Store, caplog) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    key = session_cookie_value(client.get("/"))

    def view(session, environ):
        session["a"] = 1
        store.delete(key)  # another request logs out meanwhile
        return "ok"

    racer = webtest.TestApp(SessionMiddleware(view_app(view), store=store))
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        response = racer.get("/", headers={"Cookie": f"sessionid={key}"})
    assert set_cookies(response)[0].startswith("sessionid=;")
    assert any(
        "concurrent" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    assert not store.exists(key)  # type: ignore[arg-type]


def test_session_interrupted_mid_stream_warns_once_without_claiming_a_deletion(
    caplog,
) -> None:
    store = MemoryStore()
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    key = session_cookie_value(client.get("/"))

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        environ["wsgisession"]["a"] = 1
        yield b"first"  # the headers go out with the next chunk
        store.delete(key)  # another request logs out meanwhile
        yield b"second"
        yield b"third"

    racer = webtest.TestApp(SessionMiddleware(streaming, store=store))
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        response = racer.get("/", headers={"Cookie": f"sessionid={key}"})
    assert response.body == b"firstsecondthird"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "headers had gone out" in warnings[0]
    assert "cookie deleted" not in warnings[0]
    assert not store.exists(key)


def test_interrupted_saves_warn_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture, frozen_clock
) -> None:
    """A client can race a logout against a slow request at will."""
    store = MemoryStore()
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))

    def view(session, environ):
        session["a"] = 1
        store.delete(session.session_key)  # another request logs out meanwhile
        return "ok"

    racer = webtest.TestApp(SessionMiddleware(view_app(view), store=store))
    with caplog.at_level(logging.DEBUG, logger="wsgisession.response"):
        for _ in range(3):
            key = session_cookie_value(client.get("/"))
            racer.get("/", headers={"Cookie": f"sessionid={key}"})
        frozen_clock.advance(61)
        key = session_cookie_value(client.get("/"))
        racer.get("/", headers={"Cookie": f"sessionid={key}"})
    levels = [r.levelno for r in caplog.records if "concurrent" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING]
    assert "2 more like it" in caplog.records[-1].getMessage()


def test_cycle_key_through_middleware(store: Store) -> None:
    client = webtest.TestApp(SessionMiddleware(view_app(counter), store=store))
    old = session_cookie_value(client.get("/"))

    def login(session, environ):
        session.cycle_key()
        session["user"] = "alice"
        return "ok"

    login_client = webtest.TestApp(SessionMiddleware(view_app(login), store=store))
    share_cookies(client, login_client)
    new = session_cookie_value(login_client.get("/"))
    assert new not in (None, old)
    assert not store.exists(old)  # type: ignore[arg-type]
    reader = webtest.TestApp(
        SessionMiddleware(view_app(lambda s, e: sorted(s.items())), store=store)
    )
    reader.set_cookie("sessionid", new)
    assert reader.get("/").text == "[('user', 'alice'), ('visits', 1)]"


def test_open_session_for_scripts(store: Store) -> None:
    middleware = SessionMiddleware(view_app(counter), store=store)
    session = middleware.open_session()
    session["visits"] = 41
    session.save()
    client = webtest.TestApp(middleware)
    client.set_cookie("sessionid", session.session_key)
    assert client.get("/").text == "42"
    assert middleware.open_session("").session_key is None


def test_a_saving_request_never_serializes_a_value_it_did_not_receive() -> None:
    """Values are snapshotted when handed out; the record is encoded once."""
    from wsgisession.serializers import TaggedJSONSerializer

    cart = ["apple", "pear"]
    seen: list[object] = []

    class Counting(TaggedJSONSerializer):
        def dumps(self, obj: object) -> bytes:
            if obj == cart:
                seen.append(obj)
            return super().dumps(obj)

    store = MemoryStore()
    middleware = SessionMiddleware(
        view_app(counter), store=store, serializer=Counting()
    )
    session = middleware.open_session()
    session["cart"] = list(cart)
    session.save()
    client = webtest.TestApp(middleware)
    client.set_cookie("sessionid", session.session_key)
    seen.clear()
    assert client.get("/").text == "1"
    assert seen == []  # the counter view never receives the cart
    assert middleware.open_session(session.session_key)["cart"] == cart


def test_use_settings_serves_the_next_requests_with_the_new_settings() -> None:
    middleware = SessionMiddleware(view_app(counter), store=MemoryStore())
    middleware.use_settings(Settings(cookie_name="other"))
    response = webtest.TestApp(middleware).get("/")
    assert session_cookie_value(response, "other")
    assert middleware.settings.cookie_name == "other"


def test_use_settings_refused_keeps_the_settings_in_force() -> None:
    store = SignedCookieStore("k4d4de0a5c72713ef5fa0a488ce3d3f4")
    middleware = SessionMiddleware(view_app(counter), store=store)
    with pytest.raises(ConfigError, match="cannot lock"):
        middleware.use_settings(Settings(lock=True))
    with pytest.raises(ConfigError, match="pickle"):
        middleware.use_settings(Settings(serializer="pickle"))
    assert middleware.settings == Settings()
    assert webtest.TestApp(middleware).get("/").text == "1"
