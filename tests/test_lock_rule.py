"""``lock = true`` locks only sessions whose record exists.

The attack: made-up ids, held by slow requests, used to block a real
session's lock (shared lock slots, or locks taken before the store was
asked). A request whose id the store does not know takes no lock and
writes nothing under that id; a known session is loaded, locked, then
loaded again under the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import STORE_FACTORIES, build_store, call, increment_app, store_argument

from wsgisession import SessionMiddleware
from wsgisession.keys import generate_key
from wsgisession.stores.base import Store

MADE_UP = 200


@pytest.fixture(params=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return build_store(request.param, store_argument(request.param, request, tmp_path))


class SlowApp:
    """Reads the session, then waits for ``release`` when the query says ``slow``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["seen"] = session.get("seen", 0) + 1
        if environ["QUERY_STRING"] == "slow":
            self.waiting.release()
            self.release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.mark.slow
def test_made_up_ids_held_by_slow_requests_do_not_delay_a_real_session(
    store: Store,
) -> None:
    slow = SlowApp()
    app = SessionMiddleware(slow, store=store, lock=True, lock_timeout=5)
    real = app.open_session()
    real["seen"] = 0
    real.save()
    real.release_lock()
    cookie = f"sessionid={real.session_key}"
    attackers = [
        threading.Thread(target=call, args=(app, "slow", f"sessionid={generate_key()}"))
        for _ in range(MADE_UP)
    ]
    try:
        for thread in attackers:
            thread.start()
        for _ in range(MADE_UP):  # every made-up request is inside the app, holding on
            assert slow.waiting.acquire(timeout=30)
        started = time.monotonic()
        for _ in range(5):
            call(app, "", cookie)
        elapsed = time.monotonic() - started
    finally:
        slow.release.set()
        for thread in attackers:
            thread.join(30)
    assert elapsed < 2, f"5 requests of the real session took {elapsed:.2f} s"
    assert app.open_session(real.session_key)["seen"] == 5


def test_unknown_id_takes_no_lock_and_writes_nothing_under_it(store: Store) -> None:
    app = SessionMiddleware(increment_app, store=store, lock=True, lock_timeout=0.5)
    made_up = generate_key()
    with store.lock(made_up, 1.0, 60.0):  # someone holds the made-up id's lock
        headers = call(app, "counter", f"sessionid={made_up}")
    assert store.load(made_up) is None, "nothing is written under a made-up id"
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    assert made_up not in cookie, "the write got a fresh id"


def while_waiting_for_the_lock(
    store: Store, meanwhile: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[tuple[str, str]]]:
    """A locked app's request on a saved session (counter 1), made while
    another holder runs ``meanwhile(key)`` under the session's lock, after
    the request loaded the record and began to wait; its key and headers."""
    app = SessionMiddleware(increment_app, store=store, lock=True, lock_timeout=5)
    session = app.open_session()
    session["counter"] = 1
    session.save()
    key = session.session_key
    session.release_lock()
    assert key is not None
    locked, asked = threading.Event(), threading.Event()
    take_lock = store.lock

    def lock(session_key: str, timeout: float, ttl: float) -> Any:
        asked.set()  # the request loaded the record: it asks for the lock
        return take_lock(session_key, timeout, ttl)

    def holder() -> None:
        with take_lock(key, 5.0, 60.0):
            locked.set()
            assert asked.wait(5), "the request never asked for the lock"
            meanwhile(key)

    thread = threading.Thread(target=holder)
    thread.start()
    locked.wait(5)
    monkeypatch.setattr(store, "lock", lock)
    headers = call(app, "counter", f"sessionid={key}")
    thread.join(5)
    return key, headers


def test_known_session_is_reloaded_under_the_lock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made while this request waited for the lock is what it reads:
    its increment counts from it (a request that kept its first load would
    write 2 over the 10, a lost update the merge cannot see)."""
    unlocked = SessionMiddleware(increment_app, store=store)

    def change(key: str) -> None:
        other = unlocked.open_session(key)
        other["counter"] = 10
        other.save()

    key, _ = while_waiting_for_the_lock(store, change, monkeypatch)
    assert unlocked.open_session(key)["counter"] == 11


def test_a_logout_while_waiting_for_the_lock_wins(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logout that ran while this request waited for the lock wins."""
    key, headers = while_waiting_for_the_lock(store, store.delete, monkeypatch)
    assert store.load(key) is None, "the logged-out session was not brought back"
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    assert key not in cookie
