"""In-process WSGI plumbing: environs, one call as a server makes it, the test app.

No HTTP is involved: a request is an environ dict handed to the WSGI
callable, so the figures isolate the session layer from any server.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
GetSession = Callable[[Environ], MutableMapping[str, Any]]

#: The session every read/write workload works on: 10 keys, about 1 KB.
PRIME_DATA = {f"k{i}": f"v{i}-" + "x" * 92 for i in range(10)}
READ_KEY = "k3"
NEW_KEY = "newkey"
NEW_VALUE = "v-new"
HELLO = b"hello"


class Response(NamedTuple):
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def make_environ(path: str, cookie: str | None = None) -> Environ:
    """A complete WSGI environ for ``GET path``, with a Cookie header if given."""
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def call(app: WSGIApp, environ: Environ) -> Response:
    """Call ``app`` as a server would: consume the body, then call ``close()``."""
    started: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started[:] = [status, list(headers)]
        return _no_write

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Response(started[0], started[1], body)


def _no_write(data: bytes) -> None:
    raise RuntimeError("the benchmark apps never use write()")


def set_cookie(headers: list[tuple[str, str]], name: str) -> str | None:
    """The value ``Set-Cookie`` gives cookie ``name`` ("" when deleted), or None."""
    prefix = name + "="
    for header, value in headers:
        value = value.lstrip()  # Beaker sends a leading space
        if header.lower() == "set-cookie" and value.startswith(prefix):
            return value.split(";", 1)[0][len(prefix) :]
    return None


def hello_app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """The bare app every ratio is taken against: no middleware at all."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [HELLO]


def session_app(
    get_session: GetSession, save: Callable[[Any], None] | None = None
) -> WSGIApp:
    """The app under every middleware; ``save`` is for Beaker's explicit save().

    Routes: ``/untouched`` never looks at the session; ``/prime`` stores
    PRIME_DATA and ``counter = 0``; ``/read`` returns ``session[READ_KEY]``;
    ``/write`` increments the counter and returns it; ``/new`` sets one key;
    ``/peek`` returns ``session[NEW_KEY]`` or nothing; ``/incr?name``
    increments the counter ``name`` and ``/count?name`` returns it (the
    concurrency run's routes).
    """

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/untouched":
            body = HELLO
        elif path in ("/incr", "/count"):
            name = environ["QUERY_STRING"]
            body = _counter_route(path, name, get_session(environ), save)
        else:
            body = _session_route(path, get_session(environ), save)
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def _counter_route(
    path: str,
    name: str,
    session: MutableMapping[str, Any],
    save: Callable[[Any], None] | None,
) -> bytes:
    """``/incr``: add 1 to the counter ``name`` (saved); ``/count``: return it."""
    count = session.get(name, 0)
    if path == "/incr":
        count += 1
        session[name] = count
        if save is not None:
            save(session)
    return str(count).encode()


def _session_route(
    path: str, session: MutableMapping[str, Any], save: Callable[[Any], None] | None
) -> bytes:
    if path == "/read":
        return str(session[READ_KEY]).encode()
    if path == "/peek":
        return str(session.get(NEW_KEY, "")).encode()
    if path == "/write":
        counter = session.get("counter", 0) + 1
        session["counter"] = counter
        body = str(counter).encode()
    elif path == "/new":
        session[NEW_KEY] = NEW_VALUE
        body = b"ok"
    elif path == "/prime":
        session.update(PRIME_DATA)
        session["counter"] = 0
        body = b"ok"
    else:
        raise LookupError(f"no route {path!r}")
    if save is not None:
        save(session)
    return body
