"""An app that passes its headers as a tuple (PEP 3333 asks for a list,
but waitress and gunicorn take a tuple) must not fail when the session
adds its cookie: it raised ``TypeError: can only concatenate tuple``."""

from __future__ import annotations

from typing import Any

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgisession"]["seen"] = True
    start_response("200 OK", (("Content-Type", "text/plain"),))
    return [b"ok"]


def test_headers_given_as_a_tuple_get_the_session_cookie() -> None:
    started: list[Any] = []
    middleware = SessionMiddleware(app, store=MemoryStore())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    body = middleware(
        environ,
        lambda status, headers, exc_info=None: started.append((status, list(headers))),
    )
    assert b"".join(body) == b"ok"
    status, headers = started[0]
    assert status == "200 OK" and ("Content-Type", "text/plain") in headers
    assert any(name == "Set-Cookie" and value.startswith("sessionid=")
               for name, value in headers)  # fmt: skip
