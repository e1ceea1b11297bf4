"""The wall clock stepping under live sessions: NTP setting it back, a VM resumed.

A save writes its time into the record, and ``reissue_time`` counts from
it by the clock; the cookie's ``Max-Age`` and Redis's ``PX`` count real
seconds. A clock set back must not leave an active session waiting for the
clock to catch up while its cookie (and its Redis key) lapse.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, build_store, call, store_argument
from servers import ServerProcess

from wsgisession import SessionMiddleware, clock
from wsgisession.expiry import MAX_SECONDS
from wsgisession.stores import MemoryStore, RedisStore


def reader_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?start`` stores a value (``?longest``: for the longest expiry
    ``set_expiry()`` takes); any request reads it into ``X-Value``."""
    session = environ["wsgisession"]
    if environ["QUERY_STRING"] == "start":
        session["value"] = "kept"
    if environ["QUERY_STRING"] == "longest":
        session["value"] = "kept"
        session.set_expiry(datetime.timedelta(seconds=MAX_SECONDS))
    start_response("200 OK", [("X-Value", str(session.get("value")))])
    return [b""]


def set_cookie(headers: list[tuple[str, str]]) -> str | None:
    found = [value for name, value in headers if name == "Set-Cookie"]
    return found[0] if found else None


def max_age(cookie: str) -> int:
    return int(cookie.split("Max-Age=", 1)[1].split(";", 1)[0])


@pytest.mark.parametrize(
    "kind", ["memory", "file", "sqlite", "memcached", "redis", "sql-postgresql"]
)
def test_an_active_session_is_reissued_after_the_clock_is_set_back(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    frozen_clock: FakeClock,
) -> None:
    """A request a minute, for half an hour after NTP set the clock back an
    hour: each cookie must be replaced before its Max-Age runs out (the
    browser counts real seconds), as it is without the step."""
    store = build_store(kind, store_argument(kind, request, tmp_path))
    request.addfinalizer(store.close)
    app = SessionMiddleware(reader_app, store, reissue_time=120, cookie_age=1200)
    cookie = set_cookie(call(app, "start", None))
    assert cookie is not None
    value, real = cookie.split(";", 1)[0], 0
    browser_drops_it_at = real + max_age(cookie)
    frozen_clock.advance(-3600)
    for _ in range(30):
        frozen_clock.advance(60)
        real += 60
        assert real < browser_drops_it_at, "the browser dropped the session cookie"
        headers = call(app, "", value)
        assert dict(headers)["X-Value"] == "kept"
        cookie = set_cookie(headers)
        if cookie is not None:
            browser_drops_it_at = real + max_age(cookie)


@pytest.mark.slow
def test_redis_keeps_an_active_session_after_the_clock_is_set_back(
    clean_redis: ServerProcess,
) -> None:
    """Redis drops the key ``PX`` real milliseconds after the last save,
    whatever the web node's clock says: a request every 0.3 s must keep a
    3-second session alive across a clock set back an hour."""
    with RedisStore(clean_redis.url) as store:
        app = SessionMiddleware(reader_app, store, reissue_time=1, cookie_age=3)
        cookie = set_cookie(call(app, "start", None))
        assert cookie is not None
        value = cookie.split(";", 1)[0]
        with clock.use(lambda: time.time() - 3600):
            ends = time.monotonic() + 4.5
            while time.monotonic() < ends:
                headers = call(app, "", value)
                assert dict(headers)["X-Value"] == "kept", "the session was lost"
                time.sleep(0.3)


def test_the_longest_expiry_survives_a_clock_set_back(frozen_clock: FakeClock) -> None:
    """``set_expiry()`` takes a moment up to 100 years away: read again by a
    clock a second behind (set back, another host), it is not "out of
    range" and the session is not thrown away as a corrupt record."""
    app = SessionMiddleware(reader_app, MemoryStore())
    cookie = set_cookie(call(app, "longest", None))
    assert cookie is not None
    frozen_clock.advance(-1)
    assert dict(call(app, "", cookie.split(";", 1)[0]))["X-Value"] == "kept"
