"""Timeouts at their limits: accepted and working, or a ConfigError at startup.

``inf`` or a few billion seconds (a user's "wait forever") passed every
check and then failed a request: ``OverflowError`` from the clocks and
sockets that time the wait, or a connection that the database driver refuses
on every request.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import get, increment_app, later
from servers import ServerProcess
from sql_support import sql_url

from wsgisession import SessionMiddleware
from wsgisession.config import parse_settings
from wsgisession.errors import ConfigError
from wsgisession.expiry import MAX_SECONDS
from wsgisession.stores import MemcachedStore, MemoryStore, RedisStore, SQLStore

#: Longer than ``threading.TIMEOUT_MAX`` (292 years): no wait can be timed.
TOO_LONG = 10**10


@pytest.mark.parametrize("key", ["lock_timeout", "lock_ttl"])
def test_a_lock_wait_beyond_the_longest_duration_is_refused_at_startup(
    key: str,
) -> None:
    """lock_timeout = lock_ttl = 10000000000 ("forever") made a request that
    waited for a MemoryStore lock fail with OverflowError."""
    with pytest.raises(ConfigError, match=key):
        SessionMiddleware(increment_app, MemoryStore(), lock=True, **{key: TOO_LONG})
    with pytest.raises(ConfigError, match=key):
        parse_settings({"store": "memory", key: str(TOO_LONG)})
    settings, _ = parse_settings({"store": "memory", key: str(MAX_SECONDS)})
    assert getattr(settings, key) == MAX_SECONDS


def test_locked_requests_with_the_longest_lock_settings_take_turns() -> None:
    app = SessionMiddleware(
        increment_app,
        MemoryStore(),
        lock=True,
        lock_timeout=MAX_SECONDS,
        lock_ttl=MAX_SECONDS,
    )
    _, headers = get(app)
    cookie = next(v for k, v in headers if k == "Set-Cookie").split(";")[0]
    statuses: list[str] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(get(app, "", cookie)[0]))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == ["200 OK"] * 4


def waiting_in_threading(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside a ``threading`` wait (a Condition's,
    where a timeout past ``threading.TIMEOUT_MAX`` overflows)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "wait" and code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_the_memory_store_waits_out_a_lock_held_with_a_huge_ttl() -> None:
    """``Store.lock`` called directly: a wait longer than a Condition can
    time raised OverflowError instead of waiting for the release."""
    store, key = MemoryStore(), MemoryStore().generate_key()
    held, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def holder() -> None:
        with store.lock(key, 1.0, TOO_LONG):
            held.set()
            release.wait(10)

    def waiter() -> None:
        try:
            with store.lock(key, TOO_LONG, TOO_LONG):
                outcome.append("taken")
        except OverflowError as exc:
            outcome.append(repr(exc))

    first = threading.Thread(target=holder)
    first.start()
    held.wait(10)
    second = threading.Thread(target=waiter)
    second.start()
    given_up = time.monotonic() + 10
    while second.is_alive() and not waiting_in_threading(second):  # or has failed
        assert time.monotonic() < given_up, "the waiter never began to wait"
        time.sleep(0.001)
    release.set()
    for thread in (first, second):
        thread.join(10)
    assert outcome == ["taken"]


@pytest.mark.parametrize("value", [float("inf"), float("nan"), TOO_LONG])
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda t: RedisStore("redis://127.0.0.1:1/0", socket_timeout=t), "socket"),
        (lambda t: MemcachedStore("127.0.0.1:1", timeout=t), "timeout"),
        (lambda t: MemcachedStore("127.0.0.1:1", connect_timeout=t), "connect"),
        (lambda t: SQLStore("sqlite:///unused.db", timeout=t), "SQLStore timeout"),
    ],
)
def test_a_store_timeout_no_socket_can_take_is_a_config_error(
    make: object, name: str, value: float
) -> None:
    """RedisStore(socket_timeout=inf) and MemcachedStore(connect_timeout=inf
    or nan) were accepted, and the first request raised OverflowError or
    ValueError; MemcachedStore(timeout=inf) raised OverflowError."""
    with pytest.raises(ConfigError, match=name):
        make(value)  # type: ignore[operator]


def test_the_longest_network_timeouts_still_reach_the_servers(
    clean_redis: ServerProcess, clean_memcached: ServerProcess
) -> None:
    stores = [
        RedisStore(clean_redis.url, socket_timeout=MAX_SECONDS),
        MemcachedStore(
            clean_memcached.address, connect_timeout=MAX_SECONDS, timeout=MAX_SECONDS
        ),
    ]
    for store in stores:
        key = store.generate_key()
        assert store.create(key, b"payload", later()) == key
        assert store.load(key) is not None
        store.close()


@pytest.mark.parametrize("timeout", [86400, MAX_SECONDS])
@pytest.mark.parametrize("kind", ["sql-postgresql", "sql-mariadb"])
def test_a_long_sql_timeout_still_connects(
    kind: str, timeout: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A timeout of a day made every PostgreSQL connection fail (libpq's
    keepalive idle time is at most 32767 s on Linux); one of more than a
    year made PyMySQL raise ValueError on the first request."""
    url = sql_url(kind, request, tmp_path)
    with SQLStore(url, timeout=timeout) as store:
        key = store.generate_key()
        assert store.create(key, b"payload", later()) == key
        assert store.load(key) is not None
