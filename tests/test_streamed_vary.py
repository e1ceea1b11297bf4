"""A body that reads the session after the headers went out still gets
``Vary: Cookie`` when the request carried cookies.

docs/security.rst: "any response that used the session gets ``Vary:
Cookie``". A streamed body (a generator, headers sent with its first chunk;
or one of declared length, sent one chunk behind) may first use the session
in a later chunk: Flask's ``stream_template`` of a page that shows
``session["user"]``, say. Without ``Vary: Cookie`` on the headers that went
out before, a shared cache that may keep the page (here the app marked it
``public``, trusting the middleware's ``Vary``) would serve one user's page
to everyone.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import get

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def streaming_app(length: bool) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        chunks = [b"<p>hello ", b"", b"</p>"]
        headers = [
            ("Content-Type", "text/html"),
            ("Cache-Control", "public, max-age=60"),
        ]
        if length:
            headers.append(("Content-Length", "99"))
        start_response("200 OK", headers)

        def body() -> Any:
            yield chunks[0]
            yield b"."
            yield str(environ["wsgisession"].get("user")).encode()
            yield chunks[2]

        return body()

    return app


@pytest.mark.parametrize("length", [False, True], ids=["stream", "content-length"])
def test_a_session_read_late_in_the_body_still_varies_by_cookie(length: bool) -> None:
    middleware = SessionMiddleware(streaming_app(length), store=MemoryStore())
    session = middleware.open_session()
    session["user"] = "alice"
    session.save()
    status, headers = get(middleware, "", f"sessionid={session.session_key}")
    assert status.startswith("200")
    assert ("Vary", "Cookie") in headers, headers


@pytest.mark.parametrize(
    ("cookie", "status"),
    [("theme=dark", "200 OK"), ("sessionid={key}", "503 Service Unavailable")],
    ids=["no-session-cookie", "server-error"],
)
def test_save_every_request_does_not_drop_the_vary_of_a_streamed_body(
    cookie: str, status: str
) -> None:
    """``save_every_request`` makes every response look at the session
    before its headers go; one that sets no cookie then (no session cookie
    came, or a 5xx) is still read by its body later: it varies by cookie."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(status, [("Cache-Control", "public, max-age=60")])

        def body() -> Any:
            yield b"<p>hello "
            yield str(environ["wsgisession"].get("user")).encode()

        return body()

    middleware = SessionMiddleware(app, store=MemoryStore(), save_every_request=True)
    session = middleware.open_session()
    session["user"] = "alice"
    session.save()
    _, headers = get(middleware, "", cookie.format(key=session.session_key))
    assert ("Vary", "Cookie") in headers, headers
