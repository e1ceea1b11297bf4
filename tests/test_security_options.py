"""The options and rules of the security round, each tried with its attack.

``__Host-``/``__Secure-`` cookie names, ``private_responses`` (shared
caches), ``cleanup_interval`` (disks filled by cookie-less requests),
``reissue_time``, ``save_on_error``, ``session_key`` before the load, the
rate limit on bad-cookie warnings, and the deployment warnings of
``wsgisession check``.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from helpers import FakeClock, call, get, increment_app, make_store

from wsgisession import SessionMiddleware, make_middleware
from wsgisession.config import Settings, parse_settings
from wsgisession.deploycheck import deploy_warnings, print_deploy_warnings
from wsgisession.errors import ConfigError
from wsgisession.keys import generate_key
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Record

SECRET = "security-options-secret-0123456789abcdef"


def header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


# -- __Host- and __Secure- cookie names ---------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"cookie_name": "__Host-sid"},
        {"cookie_name": "__Host-sid", "cookie_secure": "auto"},
        {"cookie_name": "__Host-sid", "cookie_secure": True, "cookie_path": "/app"},
        {
            "cookie_name": "__Host-sid",
            "cookie_secure": True,
            "cookie_domain": "example.com",
        },
        {"cookie_name": "__host-sid", "cookie_secure": False},
        {"cookie_name": "__Secure-sid"},
        {"cookie_name": "__Secure-sid", "cookie_secure": "auto"},
    ],
)
def test_cookie_prefix_rules_are_enforced(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="cookie_secure = true"):
        SessionMiddleware(increment_app, MemoryStore(), **options)
    ini = {key: str(value).lower() if key == "cookie_secure" else value
           for key, value in options.items()}  # fmt: skip
    with pytest.raises(ConfigError, match="wsgisession.cookie_name"):
        parse_settings({f"wsgisession.{k}": v for k, v in ini.items()}, "wsgisession.")


def test_a_host_cookie_that_keeps_the_rules_is_sent() -> None:
    app = SessionMiddleware(
        increment_app, MemoryStore(), cookie_name="__Host-sessionid", cookie_secure=True
    )
    (cookie,) = header(call(app, "counter", None), "Set-Cookie")
    assert cookie.startswith("__Host-sessionid=")
    assert "; Secure" in cookie and "; Path=/" in cookie and "Domain" not in cookie
    Settings(cookie_name="__Secure-sid", cookie_secure=True, cookie_path="/app")


# -- private_responses ----------------------------------------------------------


def test_a_response_setting_the_cookie_is_private() -> None:
    app = SessionMiddleware(increment_app, MemoryStore())
    headers = call(app, "counter", None)
    assert header(headers, "Cache-Control") == ["private"]
    cookie = header(headers, "Set-Cookie")[0].split(";", 1)[0]
    assert header(call(app, "counter", cookie), "Cache-Control") == ["private"]


def test_a_deleting_response_is_private_and_the_apps_own_header_wins() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgisession"].get("x")
        start_response("200 OK", [("Cache-Control", "no-store")])
        return [b""]

    middleware = SessionMiddleware(app, MemoryStore())
    _, headers = get(middleware, cookie=f"sessionid={generate_key()}")
    assert "Max-Age=0" in header(headers, "Set-Cookie")[0]
    assert header(headers, "Cache-Control") == ["no-store"]

    def reader(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgisession"].get("x")
        start_response("200 OK", [])
        return [b""]

    _, headers = get(SessionMiddleware(reader, MemoryStore()))
    assert header(headers, "Cache-Control") == []  # no cookie set or deleted
    _, headers = get(
        SessionMiddleware(reader, MemoryStore()), cookie=f"sessionid={generate_key()}"
    )
    assert header(headers, "Cache-Control") == ["private"]


def test_private_responses_can_be_turned_off() -> None:
    app = SessionMiddleware(increment_app, MemoryStore(), private_responses=False)
    headers = call(app, "counter", None)
    assert header(headers, "Set-Cookie") and not header(headers, "Cache-Control")


# -- cleanup_interval -----------------------------------------------------------


class SweepCountingStore(MemoryStore):
    """A memory store that records the sweeps asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.sweeps: list[int] = []

    def sweep_expired(self, limit: int) -> int:
        self.sweeps.append(limit)
        return super().sweep_expired(limit)


def test_saves_sweep_at_most_once_per_interval(frozen_clock: FakeClock) -> None:
    store = SweepCountingStore()
    app = SessionMiddleware(increment_app, store, cleanup_interval=300)
    for _ in range(20):  # 20 cookie-less requests that write: 20 new sessions
        call(app, "counter", None)
    assert store.sweeps == [100], "one bounded sweep, not one per request"
    frozen_clock.advance(299)
    call(app, "counter", None)
    assert store.sweeps == [100]
    frozen_clock.advance(2)
    call(app, "counter", None)
    call(app, "counter", None)
    assert store.sweeps == [100, 100]


def test_a_sweep_that_found_expired_records_is_followed_by_another_soon(
    frozen_clock: FakeClock,
) -> None:
    """A busy site's expired sessions must not pile up: 100 per 300 s is far
    fewer than one new session a second leaves behind."""
    store = SweepCountingStore()
    app = SessionMiddleware(increment_app, store, cleanup_interval=300, cookie_age=60)
    for _ in range(250):
        store.create(generate_key(), b"{}", frozen_clock() + 30)
    frozen_clock.advance(31)  # all 250 expired
    removed = []
    for _ in range(5):
        before = len(store)
        call(app, "counter", None)  # a new session: a save, maybe a sweep
        removed.append(before + 1 - len(store))
        frozen_clock.advance(1)
    assert removed == [100, 100, 50, 0, 0]
    assert len(store.sweeps) == 4, "the fourth found nothing: the interval again"
    assert len(store) == 5


def test_a_clock_set_back_does_not_stop_the_sweeps(frozen_clock: FakeClock) -> None:
    """A host whose clock ran a day ahead, then stepped back by NTP, must not
    go a day without sweeping (the next sweep was due a day ahead)."""
    store = SweepCountingStore()
    app = SessionMiddleware(increment_app, store, cleanup_interval=300)
    call(app, "counter", None)
    assert store.sweeps == [100]
    frozen_clock.advance(-86400)
    call(app, "counter", None)
    assert store.sweeps == [100, 100]
    frozen_clock.advance(10)
    call(app, "counter", None)
    assert store.sweeps == [100, 100], "then once per interval again"


def test_cleanup_interval_zero_never_sweeps(frozen_clock: FakeClock) -> None:
    store = SweepCountingStore()
    app = SessionMiddleware(increment_app, store, cleanup_interval=0)
    for _ in range(3):
        call(app, "counter", None)
        frozen_clock.advance(1000)
    assert store.sweeps == []


class BrokenSweepStore(MemoryStore):
    def sweep_expired(self, limit: int) -> int:
        raise OSError("disk on fire")


def test_a_failed_sweep_does_not_fail_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SessionMiddleware(increment_app, BrokenSweepStore())
    with caplog.at_level(logging.WARNING, logger="wsgisession.cleanup"):
        headers = call(app, "counter", None)
    assert header(headers, "Set-Cookie")
    assert "sweeping expired sessions" in caplog.text


# -- reissue_time ---------------------------------------------------------------


def reader_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgisession"].get("counter")
    start_response("200 OK", [])
    return [b""]


def stored(store: MemoryStore, key: str) -> Record:
    record = store.load(key)
    assert record is not None
    return record


def test_reissue_time_resaves_an_unchanged_session(frozen_clock: FakeClock) -> None:
    store = MemoryStore()
    app = SessionMiddleware(reader_app, store, reissue_time=60, cookie_age=600)
    session = app.open_session()
    session["counter"] = 1
    session.save()
    key = session.session_key
    assert key is not None
    first = stored(store, key).expires_at
    frozen_clock.advance(30)
    assert header(call(app, "", f"sessionid={key}"), "Set-Cookie") == []
    frozen_clock.advance(31)
    (cookie,) = header(call(app, "", f"sessionid={key}"), "Set-Cookie")
    assert key in cookie and "Max-Age=600" in cookie
    assert stored(store, key).expires_at == first + 61, "the record lives on"
    frozen_clock.advance(1)
    assert header(call(app, "", f"sessionid={key}"), "Set-Cookie") == []


def test_without_reissue_time_reading_never_saves(frozen_clock: FakeClock) -> None:
    store = MemoryStore()
    app = SessionMiddleware(reader_app, store)
    session = app.open_session()
    session["counter"] = 1
    session.save()
    frozen_clock.advance(10_000)
    assert header(call(app, "", f"sessionid={session.session_key}"), "Set-Cookie") == []


def test_a_record_without_a_save_time_is_reissued() -> None:
    store = MemoryStore()
    key = generate_key()
    old = {"v": 1, "data": {"counter": 1}, "created": 1.0, "expiry": None}
    store.create(key, json.dumps(old).encode(), 4e9)
    app = SessionMiddleware(reader_app, store, reissue_time=3600)
    assert header(call(app, "", f"sessionid={key}"), "Set-Cookie")
    assert header(call(app, "", f"sessionid={key}"), "Set-Cookie") == []


# -- save_on_error --------------------------------------------------------------


def failing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgisession"]["flash"] = "the order failed"
    if environ["QUERY_STRING"] == "raise":
        raise RuntimeError("boom")
    start_response("500 Internal Server Error", [])
    return [b"error page"]


@pytest.mark.parametrize("save_on_error", [False, True])
def test_a_rendered_5xx_saves_only_with_save_on_error(save_on_error: bool) -> None:
    store = MemoryStore()
    app = SessionMiddleware(failing_app, store, save_on_error=save_on_error)
    status, headers = get(app)
    assert status.startswith("500")
    cookies = header(headers, "Set-Cookie")
    if not save_on_error:
        assert cookies == []
        return
    key = cookies[0].split(";", 1)[0].split("=", 1)[1]
    assert app.open_session(key)["flash"] == "the order failed"


class CreateCountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.created = 0

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        self.created += 1
        return super().create(session_key, payload, expires_at)


def test_an_escaping_exception_never_saves() -> None:
    store = CreateCountingStore()
    app = SessionMiddleware(failing_app, store, save_on_error=True)
    with pytest.raises(RuntimeError):
        get(app, query="raise")
    assert store.created == 0
    get(app)
    assert store.created == 1, "the same app does save a rendered 500"


def test_pyramid_names_map_to_the_options() -> None:
    from pyramid.config import Configurator

    settings = {
        "wsgisession.store": "memory",
        "wsgisession.set_on_exception": "true",
        "wsgisession.reissue_time": "120",
    }
    from wsgisession.contrib.pyramid import make_wsgi_app

    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        middleware = make_wsgi_app(config)
    assert middleware.settings.save_on_error is True
    assert middleware.settings.reissue_time == 120
    settings["wsgisession.save_on_error"] = "false"
    with Configurator(settings=settings) as config, pytest.raises(ConfigError):
        make_wsgi_app(config)


def test_make_middleware_understands_pyramids_names_too() -> None:
    """A Pyramid app wrapped by hand reads the same settings as make_wsgi_app
    (and as ``wsgisession check``): set_on_exception is save_on_error."""
    settings = {"wsgisession.store": "memory", "wsgisession.set_on_exception": "true"}
    middleware = make_middleware(failing_app, settings)
    assert middleware.settings.save_on_error is True
    settings["wsgisession.save_on_error"] = "false"
    with pytest.raises(ConfigError, match="same option"):
        make_middleware(failing_app, settings)


# -- session_key before the load ------------------------------------------------


def test_session_key_of_a_made_up_id_is_none_and_varies() -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        seen.append((session.session_key, bool(session)))
        start_response("200 OK", [])
        return [b""]

    store = MemoryStore()
    middleware = SessionMiddleware(app, store)
    _, headers = get(middleware, cookie=f"sessionid={generate_key()}")
    assert seen == [(None, False)], "a made-up id is not a logged-in session"
    assert "Cookie" in header(headers, "Vary")
    real = middleware.open_session()
    real["user"] = "ann"
    real.save()
    _, headers = get(middleware, cookie=f"sessionid={real.session_key}")
    assert seen[-1] == (real.session_key, True)
    assert "Cookie" in header(headers, "Vary")


def test_bool_alone_counts_as_access() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Logged-In", str(bool(environ["wsgisession"])))])
        return [b""]

    _, headers = get(SessionMiddleware(app, MemoryStore()))
    assert header(headers, "X-Logged-In") == ["False"]
    assert "Cookie" in header(headers, "Vary")


# -- log flooding ---------------------------------------------------------------


def test_bad_cookie_warnings_are_rate_limited(
    frozen_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = SessionMiddleware(reader_app, SignedCookieStore(SECRET))
    with caplog.at_level(logging.DEBUG, logger="wsgisession.stores.cookie"):
        for index in range(50):
            get(app, cookie=f"sessionid=forged{index}.sig")
        frozen_clock.advance(61)
        get(app, cookie="sessionid=forged.again")
    records = [r for r in caplog.records if r.name == "wsgisession.stores.cookie"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(records) == 51
    assert len(warnings) == 2
    assert "49 more like it" in warnings[1].getMessage()


def test_a_clock_set_back_does_not_silence_the_warnings(
    frozen_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """NTP stepping back a clock that ran a day ahead must not turn every
    warning of the next day (bad cookies, or changes dropped by a concurrent
    logout, which share the throttle) into DEBUG lines."""
    app = SessionMiddleware(reader_app, SignedCookieStore(SECRET))
    with caplog.at_level(logging.DEBUG, logger="wsgisession.stores.cookie"):
        get(app, cookie="sessionid=forged.one")
        frozen_clock.advance(-86400)
        get(app, cookie="sessionid=forged.two")
        frozen_clock.advance(30)  # within a minute of that WARNING
        get(app, cookie="sessionid=forged.three")
    levels = [r.levelno for r in caplog.records if "rejected" in r.getMessage()]
    assert levels == [logging.WARNING, logging.WARNING, logging.DEBUG]


# -- deployment warnings --------------------------------------------------------


def test_deploy_warnings_name_the_unsafe_settings() -> None:
    settings, spec = parse_settings(
        {
            "store": "redis",
            "redis_url": "redis://127.0.0.1:1/0",
            "cookie_httponly": "false",
        }
    )
    found = deploy_warnings(settings, spec)
    assert len(found) == 3
    text = " ".join(found)
    assert "cookie_secure = false" in text and "cookie_httponly = false" in text
    assert "key_prefix" in text and "store = redis" in text
    settings, spec = parse_settings(
        {
            "store": "memcached",
            "memcached_servers": "127.0.0.1:1",
            "key_prefix": "myapp:",
            "cookie_secure": "true",
        }
    )
    assert deploy_warnings(settings, spec) == []
    stream = io.StringIO()
    settings, spec = parse_settings({"store": "memory"})
    assert print_deploy_warnings(settings, spec, stream) == 1
    assert stream.getvalue().startswith("warning: cookie_secure = false")


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_cookie_less_writes_do_not_pile_up(
    kind: str, tmp_path: Any, frozen_clock: FakeClock
) -> None:
    """The disk-filling attack: each cookie-less request makes a session."""
    store = make_store(kind, tmp_path)
    app = SessionMiddleware(increment_app, store, cookie_age=60, cleanup_interval=300)
    for _ in range(150):
        call(app, "csrf", None)
    frozen_clock.advance(400)  # all 150 expired; the interval has passed
    call(app, "csrf", None)  # this save sweeps one bounded batch
    left = store.clear_expired()
    assert 50 <= left < 150, f"the sweep removed {150 - left}: some, at most 100"


def test_deploy_warnings_name_a_cookie_store_without_absolute_timeout() -> None:
    """A signed cookie cannot be revoked and each save re-signs it: without
    ``absolute_timeout`` a stolen copy kept in use never ends, so ``check``
    says so (see tests/test_cookie_store_replay.py)."""
    base = {"store": "cookie", "secret_key": SECRET, "cookie_secure": "true"}
    settings, spec = parse_settings(base)
    (warning,) = deploy_warnings(settings, spec)
    assert warning.startswith("store = cookie without absolute_timeout")
    settings, spec = parse_settings({**base, "absolute_timeout": "86400"})
    assert deploy_warnings(settings, spec) == []
    server_side = {"store": "memory", "cookie_secure": "true"}
    assert deploy_warnings(*parse_settings(server_side)) == []
