"""The opt-in request lock (``lock = true``) on the local stores.

memcached and Redis have the same tests in their own modules, next to the
servers they need.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import call, increment_app, make_store, new_session

from wsgisession import SessionMiddleware
from wsgisession.errors import ConfigError, LockTimeout
from wsgisession.stores import SignedCookieStore, SQLiteStore

THREADS = 6
REQUESTS = 20


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_same_key_increments_lose_nothing_with_lock(kind: str, tmp_path: Path) -> None:
    app = SessionMiddleware(increment_app, store=make_store(kind, tmp_path), lock=True)
    cookie = new_session(app)
    errors: list[Exception] = []

    def worker() -> None:
        try:
            for _ in range(REQUESTS):
                call(app, "counter", cookie)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = app.open_session(cookie.split("=", 1)[1])["counter"]
    print(f"{kind} lock=true: {THREADS * REQUESTS + 1} increments, final {total}")
    assert total == THREADS * REQUESTS + 1


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_lock_timeout_raises_named_error(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    app = SessionMiddleware(increment_app, store=store, lock=True, lock_timeout=0.05)
    cookie = new_session(app)
    key = cookie.split("=", 1)[1]
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with store.lock(key, 1.0, 60.0):
            held.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            call(app, "counter", cookie)
        assert time.monotonic() - started < 8  # lock_timeout, not the default 10 s
    finally:
        done.set()
        thread.join()
    assert call(app, "counter", cookie), "the lock must be free again"


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_lock_released_when_app_raises(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    good = SessionMiddleware(increment_app, store=store, lock=True, lock_timeout=0.5)
    cookie = new_session(good)

    def failing(environ, start_response):
        environ["wsgisession"]["x"] = 1
        raise RuntimeError("boom")

    bad = SessionMiddleware(failing, store=store, lock=True, lock_timeout=0.5)
    with pytest.raises(RuntimeError):
        call(bad, "", cookie)
    call(good, "counter", cookie)
    assert good.open_session(cookie.split("=", 1)[1])["counter"] == 2


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
@pytest.mark.parametrize("streamed", [False, True], ids=["list", "generator"])
def test_lock_released_while_the_server_still_holds_the_request(
    kind: str, streamed: bool, tmp_path: Path
) -> None:
    """The middleware releases the lock when the response is settled (or
    closed), not the garbage collector when the request's objects go: a
    server keeps the environ, and so the session, a while longer."""
    store = make_store(kind, tmp_path)
    app = SessionMiddleware(increment_app, store=store, lock=True)
    cookie = new_session(app)
    key = cookie.split("=", 1)[1]
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_COOKIE": cookie}

    def wrapped(environ, start_response):
        body = increment_app(environ, start_response)
        return iter(body) if streamed else body

    locked = SessionMiddleware(wrapped, store=store, lock=True)
    result = locked(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"2"
    getattr(result, "close", lambda: None)()
    assert environ["wsgisession"].session_key == key  # still held here
    taken: list[bool] = []

    def other_request() -> None:  # another thread: the lock is not reentrant there
        with store.lock(key, 0.5, 60.0):
            taken.append(True)

    thread = threading.Thread(target=other_request)
    thread.start()
    thread.join()
    assert taken == [True], "the request lock was still held"


def test_lock_is_refused_for_the_cookie_store() -> None:
    with pytest.raises(ConfigError, match="lock"):
        SessionMiddleware(
            increment_app,
            store=SignedCookieStore("seaf5bf2337958ea5df1b7e2da9d9a9e"),
            lock=True,
        )


def test_lock_off_by_default_never_blocks(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    app = SessionMiddleware(increment_app, store=store)
    cookie = new_session(app)
    key = cookie.split("=", 1)[1]
    with store.lock(key, 1.0, 60.0):
        started = time.monotonic()
        call(app, "counter", cookie)
        assert time.monotonic() - started < 5  # never waits for the lock (10 s)
