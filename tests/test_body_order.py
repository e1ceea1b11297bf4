"""What a body held back by the middleware does to the order of things: a
redirect's session is stored before its headers leave (a browser follows a
redirect as soon as it has them), and bytes the app passes to ``write()``
while a chunk is held back go out after that chunk, as the app wrote them."""

from __future__ import annotations

import io
import wsgiref.handlers
import wsgiref.util
from collections.abc import Iterator
from typing import Any

import pytest

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def stored_when_headers_left(app: Any, store: MemoryStore, cookie: str = "") -> Any:
    """Serve ``app``; the user name each session held when the headers left."""
    seen: list[list[Any]] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/login"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append(sorted(str(r.payload) for r in store._records.values()))
        return lambda data: None

    body = SessionMiddleware(app, store)(environ, start_response)
    try:
        assert b"".join(body).startswith(b"<p>")
    finally:
        body.close()  # type: ignore[attr-defined]
    return seen


def login(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A login whose redirect page is made in two chunks (a streamed template)."""
    environ["wsgisession"]["user"] = "ada"
    start_response("303 See Other", [("Location", "/home")])
    yield b"<p>Redirecting"
    yield b" to /home</p>"


@pytest.mark.parametrize("existing", [False, True])
def test_a_redirect_of_several_chunks_is_saved_before_its_headers_go(
    existing: bool,
) -> None:
    """A browser follows a redirect as soon as it has the headers: the
    session the redirect sets (a new one, or a change to the one the browser
    holds) must be stored by then, whatever the number of chunks. The
    middleware sent the headers with the first chunk and saved at the last:
    the page the browser is sent to could load the session before the save."""
    store = MemoryStore()
    cookie = ""
    if existing:
        session = SessionMiddleware(login, store).open_session()
        session["user"] = "nobody"
        session.save()
        cookie = f"sessionid={session.session_key}"
    seen = stored_when_headers_left(login, store, cookie)
    assert len(seen) == 1
    assert any("ada" in payload for payload in seen[0]), (
        f"the redirect left before its session was stored: {seen}"
    )


def written_midway(environ: dict[str, Any], start_response: Any) -> Any:
    """``write()`` between two yielded chunks of a body of declared length."""
    environ["wsgisession"]["n"] = 1
    write = start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")]
    )

    def body() -> Iterator[bytes]:
        yield b"1"
        write(b"2")
        yield b"3"

    return body()


def test_bytes_written_while_a_chunk_is_held_back_keep_their_order() -> None:
    """PEP 3333's write() sends at once; the middleware held the app's first
    chunk back (a body of declared length goes one chunk behind), so what the
    app wrote next went out before it: the client got b"213"."""
    stdout = io.BytesIO()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    wsgiref.util.setup_testing_defaults(environ)
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, io.StringIO(), environ, multithread=False
    )
    handler.run(SessionMiddleware(written_midway, MemoryStore()))
    head, _, body = stdout.getvalue().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Set-Cookie: sessionid=" in head
    assert body == b"123"
