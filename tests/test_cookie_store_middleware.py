"""The signed cookie store behind the middleware: what API.md section 7 promises."""

from __future__ import annotations

import ast
import logging
import os
import time

import pytest
import webtest
from helpers import fake_clock

from wsgisession import SessionMiddleware
from wsgisession.errors import ConfigError, SessionCookieTooLarge
from wsgisession.stores import SignedCookieStore

SECRET = "s3cret-395ca18d5721f5d248ddac6221bd09020dd"


def counter_app(environ, start_response):
    session = environ["wsgisession"]
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["visits"]).encode()]


def reader_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["wsgisession"].get("visits")).encode()]


def cookie_of(response: webtest.TestResponse) -> str:
    header = response.headers["Set-Cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


def test_the_cookie_value_is_the_session_key() -> None:
    middleware = SessionMiddleware(counter_app, store=SignedCookieStore(SECRET))
    client = webtest.TestApp(middleware)
    value = cookie_of(client.get("/"))
    assert client.get("/").text == "2"
    session = middleware.open_session(value)
    assert session.session_key == value
    assert session["visits"] == 1


def test_cycle_key_keeps_the_data() -> None:
    middleware = SessionMiddleware(counter_app, store=SignedCookieStore(SECRET))
    value = cookie_of(webtest.TestApp(middleware).get("/"))
    session = middleware.open_session(value)
    session.cycle_key()
    assert session.session_key not in (None, value)
    assert middleware.open_session(session.session_key)["visits"] == 1


@pytest.mark.parametrize("kind", ["forged", "foreign", "expired"])
def test_a_bad_cookie_that_is_read_is_deleted(kind: str) -> None:
    store = SignedCookieStore(SECRET)
    if kind == "forged":
        value = cookie_of(
            webtest.TestApp(SessionMiddleware(counter_app, store=store)).get("/")
        )
        value = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    elif kind == "foreign":
        other = SessionMiddleware(
            counter_app,
            store=SignedCookieStore("another secret key, also 32 bytes long"),
        )
        value = cookie_of(webtest.TestApp(other).get("/"))
    else:
        value = store.create("", b"{}", time.time() - 1) or ""
    client = webtest.TestApp(SessionMiddleware(reader_app, store=store))
    response = client.get("/", headers={"Cookie": f"sessionid={value}"})
    assert response.text == "None"
    assert response.headers["Set-Cookie"].startswith("sessionid=;")
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_pickle_is_refused_with_the_cookie_store() -> None:
    with pytest.raises(ConfigError, match="pickle"):
        SessionMiddleware(
            counter_app, store=SignedCookieStore(SECRET), serializer="pickle"
        )


def test_save_raises_when_the_whole_cookie_would_be_too_large() -> None:
    """A value under 4093 bytes whose name and attributes push it over."""
    middleware = SessionMiddleware(
        counter_app,
        store=SignedCookieStore(SECRET, compress_threshold=1 << 20),
        cookie_domain="a-rather-long-subdomain.example.com",
    )
    session = middleware.open_session()
    session["blob"] = ""
    session.save()
    room = 4093 - len(session.session_key or "")
    session["blob"] = "x" * (room * 3 // 4 - 20)  # base64 grows data by 4/3
    with pytest.raises(SessionCookieTooLarge) as raised:
        session.save()
    assert raised.value.limit == 4093 and raised.value.size > 4093
    assert len(session.session_key or "") <= 4093, "the value alone fits"


def test_the_middleware_lets_too_large_propagate() -> None:
    def big_app(environ, start_response):
        environ["wsgisession"]["blob"] = os.urandom(4000).hex()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = webtest.TestApp(
        SessionMiddleware(big_app, store=SignedCookieStore(SECRET))
    )
    with pytest.raises(SessionCookieTooLarge):
        client.get("/")


class ReprSerializer:
    """A custom serializer an app may have used before the default one."""

    def dumps(self, obj: object) -> bytes:
        return repr(obj).encode("utf-8")

    def loads(self, data: bytes) -> object:
        return ast.literal_eval(data.decode("utf-8"))


def test_replaying_a_cookie_the_serializer_cannot_read_warns_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cookie signed with the key but written by another serializer (the
    app changed serializers, or another app shares the key) is the client's
    to send again and again: like a forged one, it may not fill the logs."""
    before = SessionMiddleware(
        counter_app, store=SignedCookieStore(SECRET), serializer=ReprSerializer()
    )
    old_value = cookie_of(webtest.TestApp(before).get("/"))
    client = webtest.TestApp(
        SessionMiddleware(reader_app, store=SignedCookieStore(SECRET))
    )
    with caplog.at_level(logging.DEBUG, logger="wsgisession"):
        for _ in range(5):
            response = client.get("/", headers={"Cookie": f"sessionid={old_value}"})
            assert response.text == "None"
    told = [r for r in caplog.records if "corrupt session record" in r.getMessage()]
    assert len(told) == 5, "each one is logged, at DEBUG past the first"
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1, [r.getMessage() for r in loud]
    assert old_value not in caplog.text


def blob_app(size: int):
    def app(environ, start_response):
        environ["wsgisession"]["blob"] = "x" * size
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


@pytest.mark.parametrize(
    "options",
    [
        {},  # no Secure: cookie_secure = false, the default
        {"cookie_secure": True, "cookie_domain": "shop.example.com"},
        {"cookie_partitioned": True, "cookie_name": "__Host-sessionid"},
    ],
)
def test_the_limit_is_the_size_of_the_header_that_is_sent(options: dict) -> None:
    """Sessions grow a byte at a time up to the first one refused: the last
    that saves sends a header a byte or two under 4093, and the one refused
    reports the size of the header it would have sent, attributes and all."""
    if options.get("cookie_name", "").startswith("__Host-"):
        options = {**options, "cookie_secure": True}
    store = SignedCookieStore(SECRET, compress_threshold=1 << 20)
    sent = 0
    with fake_clock(1_800_000_000.0):
        for size in range(2700, 3100):
            middleware = SessionMiddleware(blob_app(size), store=store, **options)
            try:
                response = webtest.TestApp(middleware).get("/")
            except SessionCookieTooLarge as exc:
                assert exc.size > 4093
                assert exc.size - sent <= 2, (sent, exc.size)
                break
            sent = len(response.headers["Set-Cookie"])
            assert sent <= 4093
        else:
            pytest.fail("no session was too large")
    assert sent >= 4093 - 2, f"refused a session whose {sent + 1}+ byte cookie fits"
