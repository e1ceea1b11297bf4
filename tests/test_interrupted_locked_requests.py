"""With ``lock = true``, an interrupt anywhere in a request's path through
wsgisession never leaves its session locked.

A signal handler's ``KeyboardInterrupt``, a ``gevent.Timeout`` or an
exception sent to the thread with ``PyThreadState_SetAsyncExc`` lands where
Python checks for one: as a function is entered, as a call has returned.
Each such point of wsgisession's code in one request (a write, a read, a
``cycle_key()``) gets an interrupt in turn (see interrupting.py); once it
has propagated, another request must take the session's lock at once. The
cycle collector is off meanwhile: a lock that only a collection would
release (a suspended generator in a reference cycle) counts as left held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_store
from interrupting import (
    request_interrupted_at,
)

from wsgisession import SessionMiddleware
from wsgisession.errors import LockTimeout
from wsgisession.stores.base import Store

ACTIONS = {
    "write": lambda session: session.__setitem__("n", session.get("n", 0) + 1),
    "read": lambda session: session.get("n"),
    "cycle_key": lambda session: session.cycle_key(),
}


def lock_is_free(store: Store, key: str) -> bool:
    """Whether another request takes the session's lock at once (a request
    that waits instead, on the lock or on the store's own, counts as no)."""
    taken: list[bool] = []

    def other_request() -> None:
        try:
            with store.lock(key, 0.2, 60):
                taken.append(True)
        except LockTimeout:
            taken.append(False)

    thread = threading.Thread(target=other_request, daemon=True)
    thread.start()
    thread.join(2)  # a daemon: one stuck waits out its store's timeout alone
    return taken == [True] and not thread.is_alive()  # released too


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = make_store(request.param, tmp_path)
    yield made
    made.close()


@pytest.mark.slow  # a hundred requests and lock checks per case
@pytest.mark.usefixtures("no_collector")
@pytest.mark.parametrize("action", ACTIONS)
def test_an_interrupt_anywhere_leaves_no_lock_held(store: Store, action: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ACTIONS[action](environ["wsgisession"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(
        app, store=store, lock=True, lock_timeout=0.2, cleanup_interval=0
    )
    left_held, point = [], 0
    while True:
        point += 1
        key, fired = request_interrupted_at(middleware, point)
        if not fired:  # past the request's last point
            break
        if not lock_is_free(store, key):
            left_held.append(point)
    assert point > 20  # the request's path was interrupted, point by point
    assert left_held == []
