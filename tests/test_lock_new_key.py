"""With ``lock = true``, a request that moves its session to a new key
(cycle_key(), bind_user()) holds the lock of the key its session now has,
not only of the key it came with.

Once the new cookie is out (a streamed body: the headers go before the body
ends), the client's next request carries the new key; it must wait for the
first request to finish, as the requests of one session do.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import make_store, new_session

from wsgisession import SessionMiddleware
from wsgisession.errors import LockTimeout


def _cookie_of(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "set-cookie":
            return value.split(";", 1)[0]
    raise AssertionError(f"no Set-Cookie in {headers}")


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        pytest.param("file", marks=pytest.mark.slow),
        pytest.param("sqlite", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("move", ["cycle_key", "bind_user"])
def test_the_new_key_is_locked_while_the_request_that_made_it_runs(
    kind: str, move: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    release_body = threading.Event()

    def app(environ, start_response):
        session = environ["wsgisession"]
        query = environ.get("QUERY_STRING", "")
        if query == "login":
            session["n"] = session.get("n", 0) + 1
            if move == "cycle_key":
                session.cycle_key()
            else:
                session.bind_user("alice")
            start_response("200 OK", [("Content-Type", "text/plain")])

            def body():  # a streamed page: headers out before the body ends
                yield b"first"
                release_body.wait(10)
                session["n"] = session["n"] + 10  # saved when the response ends
                yield b"last"

            return body()
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = SessionMiddleware(app, store=store, lock=True, lock_timeout=0.05)
    cookie = new_session(mw)

    sent: list[list[tuple[str, str]]] = []
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "login", "HTTP_COOKIE": cookie}
    result = mw(environ, lambda status, headers, exc_info=None: sent.append(headers))
    chunks = iter(result)
    assert next(chunks) == b"first"  # headers went out with the new cookie
    new_cookie = _cookie_of(sent[0])
    assert new_cookie != cookie

    # The client's next request, with the cookie it just got, while the
    # first request is still running: it must wait for that request's lock.
    outcome: list[object] = []

    def second() -> None:
        env = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_COOKIE": new_cookie}
        try:
            res = mw(env, lambda *a: None)
            b"".join(res)
            getattr(res, "close", lambda: None)()
            outcome.append("ran")
        except LockTimeout as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(5)
    try:
        assert outcome and isinstance(outcome[0], LockTimeout), (
            f"a second request of the session ran while the first held its lock: {outcome}"
        )
    finally:
        release_body.set()
        rest = list(chunks)
        result.close()
        assert rest == [b"last"]
