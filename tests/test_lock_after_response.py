"""A session first used after its response was closed takes no request lock:
nothing would release it, and every later request of the session would wait
``lock_timeout`` and fail until ``lock_ttl`` ran out."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import increment_app, make_store, new_session

from wsgisession import SessionMiddleware
from wsgisession.errors import LockTimeout


def _untouched_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _lock_is_free(store, key: str) -> bool:
    taken: list[bool] = []

    def other_request() -> None:  # another thread: the lock is not reentrant there
        try:
            with store.lock(key, 0.3, 60.0):
                taken.append(True)
        except LockTimeout:
            taken.append(False)

    thread = threading.Thread(target=other_request)
    thread.start()
    thread.join()
    return taken == [True]


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_session_first_read_after_close_leaves_the_lock_free(
    kind: str, streamed: bool, tmp_path: Path
) -> None:
    """An outer access log reads the session once the response is done."""
    store = make_store(kind, tmp_path)
    cookie = new_session(SessionMiddleware(increment_app, store=store))
    key = cookie.split("=", 1)[1]

    def app(environ, start_response):
        body = _untouched_app(environ, start_response)
        return iter(body) if streamed else body

    locked = SessionMiddleware(app, store=store, lock=True)
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_COOKIE": cookie}
    result = locked(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"ok"
    getattr(result, "close", lambda: None)()
    assert environ["wsgisession"].get("counter") == 1  # the access log's read
    assert _lock_is_free(store, key), "a lock nobody releases"
