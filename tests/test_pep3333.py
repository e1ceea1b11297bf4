"""PEP 3333 on both sides of the middleware, checked by the standard
library's ``wsgiref.validate.validator``: one wraps the app (what the
middleware offers it, as its server), one wraps the middleware (what it
offers the server, as an app), and wsgiref's handler serves them.

Every body shape (a list, a generator that calls ``start_response`` before
or inside its first iteration, an iterable with ``close()``, the server's
file wrapper, ``write()`` alone or with a body, an empty body) meets every
use of the session (untouched, read, written, new, flushed, cycled) on the
memory and SQLite stores: no validator error or warning, ``close()`` once,
``Set-Cookie`` and ``Vary`` at most once each, the body as the app made it,
and the session stored as the app left it.

The validator reads a dotless environ key as a CGI variable, which must be
a ``str``: these apps use ``environ_key = "wsgisession.session"``
(docs/configuration.rst).
"""

from __future__ import annotations

import io
import sys
import warnings
import wsgiref.handlers
import wsgiref.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import WSGIWarning, validator

import pytest
from helpers import make_store
from werkzeug.debug import DebuggedApplication

from wsgisession import Session, SessionMiddleware
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Store

ENVIRON_KEY = "wsgisession.session"
BODY = [b"hello ", b"world"]
SHAPES = [
    "list",
    "generator_started_before",
    "generator_starts_inside",
    "closing",
    "file_wrapper",
    "write_only",
    "write_then_list",
    "empty",
]
USES = ["untouched", "read", "written", "new", "flushed", "cycled"]
App = Callable[[dict[str, Any], Callable[..., Any]], Any]


class Closing:
    """An iterable with ``close()``, as a framework's response object."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closes = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closes += 1


def use(session: Session, kind: str) -> None:
    """Do to ``session`` what ``kind`` names."""
    if kind == "read":
        session.get("n")
    elif kind in ("written", "new"):
        session["n"] = session.get("n", 0) + 1
    elif kind == "flushed":
        session.flush()
    elif kind == "cycled":
        session.cycle_key()


def shaped_app(shape: str, kind: str, closings: list[Closing]) -> App:
    """An app that uses its session as ``kind`` says and answers in ``shape``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        use(environ[ENVIRON_KEY], kind)
        headers = [("Content-Type", "text/plain")]
        if shape == "generator_starts_inside":
            return generator(start_response, headers)
        write = start_response("200 OK", headers)
        if shape == "list":
            return list(BODY)
        if shape == "generator_started_before":
            return iter(list(BODY))
        if shape == "closing":
            closings.append(Closing(list(BODY)))
            return closings[-1]
        if shape == "file_wrapper":
            return environ["wsgi.file_wrapper"](io.BytesIO(b"".join(BODY)), 4)
        if shape == "write_only":
            for chunk in BODY:
                write(chunk)
            return []
        if shape == "write_then_list":
            write(BODY[0])
            return BODY[1:]
        return []

    return app


def generator(start_response: Callable[..., Any], headers: Any) -> Iterator[bytes]:
    """A body that starts the response in its first iteration."""
    start_response("200 OK", headers)
    yield from BODY


def serve(app: App, cookie: str | None) -> tuple[str, bytes, str]:
    """Run ``app`` once under wsgiref's handler; (head, body, error log),
    any validator warning raised as an error."""
    stdout, stderr = io.BytesIO(), io.StringIO()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    wsgiref.util.setup_testing_defaults(environ)
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, stderr, environ, multithread=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        handler.run(app)
    head, _, body = stdout.getvalue().partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, stderr.getvalue()


def header_values(head: str, name: str) -> list[str]:
    """The values of the header ``name`` in a response's ``head``."""
    prefix = f"{name.lower()}: "
    return [
        line[len(prefix) :]
        for line in head.split("\r\n")
        if line.lower().startswith(prefix)
    ]


def stored_n(store: Store, key: str | None) -> object:
    """The ``n`` the session of ``key`` holds in ``store`` (None: none)."""
    return Session(store, None, key).get("n") if key else None


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    built = make_store(request.param, tmp_path)
    yield built
    built.close()


@pytest.mark.parametrize("kind", USES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_body_shape_and_session_use_passes_the_validator_on_both_sides(
    store: Store, shape: str, kind: str
) -> None:
    """The file wrapper is passed to the middleware unwrapped (the inner
    validator would hide it behind its own iterator), so that the middleware
    hands the server's wrapper back as it is."""
    old_key = None
    if kind != "new":
        seeded = Session(store)
        seeded["n"] = 1
        seeded.save()
        old_key = seeded.session_key
    closings: list[Closing] = []
    app = shaped_app(shape, kind, closings)
    inner = app if shape == "file_wrapper" else validator(app)
    middleware = SessionMiddleware(inner, store, environ_key=ENVIRON_KEY)
    cookie = None if old_key is None else f"sessionid={old_key}"
    head, body, errors = serve(validator(middleware), cookie)
    assert errors == ""
    assert head.startswith("HTTP/1.0 200 OK"), head
    assert body == (b"" if shape == "empty" else b"".join(BODY))
    assert [closing.closes for closing in closings] == [1] * len(closings)
    cookies = header_values(head, "Set-Cookie")
    assert len(cookies) <= 1 and len(header_values(head, "Vary")) <= 1
    sent_key = cookies[0].split(";")[0].partition("=")[2] if cookies else None
    expected = _expected_outcome(kind, old_key)
    assert (sent_key is not None, stored_n(store, sent_key or old_key)) == expected


def _expected_outcome(kind: str, old_key: str | None) -> tuple[bool, object]:
    """Whether ``kind`` sends a cookie, and the ``n`` its session then holds."""
    return {
        "untouched": (False, 1),
        "read": (False, 1),
        "written": (True, 2),
        "new": (True, 1),
        "flushed": (True, None),
        "cycled": (True, 1),
    }[kind]


def test_start_response_again_without_exc_info_is_refused() -> None:
    """PEP 3333: calling ``start_response`` again without ``exc_info`` is a
    fatal error, and wsgiref, waitress and gunicorn all raise. The
    middleware took the second status in silence: an app's bug passed
    behind it (here a 404 served as 200 with its session saved)."""
    store = MemoryStore()

    def twice(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgisession"]["n"] = 1
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"found after all"]

    bare_head, _, bare_errors = serve(twice_without_session(), None)
    head, _, errors = serve(SessionMiddleware(twice, store), None)
    assert "AssertionError" in bare_errors and bare_head.startswith("HTTP/1.0 500")
    assert "AssertionError" in errors and head.startswith("HTTP/1.0 500"), head
    assert header_values(head, "Set-Cookie") == []
    assert len(store._records) == 0


def twice_without_session() -> App:
    """The app of the test above without a session: what servers do with it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"found after all"]

    return app


def test_an_error_handler_restarting_before_the_body_began_saves_nothing() -> None:
    """werkzeug's debugger catches an exception raised before the body's
    first chunk and calls ``start_response`` again without ``exc_info``:
    refused, it logs and ends the body as if complete, with the app's 200.
    The change of that failed request must not be saved."""
    store = MemoryStore()

    def fails_first(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgisession"]["step"] = 99
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("boom before the first chunk")
        yield b"never"  # a generator: the exception comes at its first next()

    middleware = SessionMiddleware(DebuggedApplication(fails_first), store)
    existing = middleware.open_session()
    existing["step"] = 0
    existing.save()
    head, _, _ = serve(middleware, f"sessionid={existing.session_key}")
    assert header_values(head, "Set-Cookie") == []
    assert middleware.open_session(existing.session_key)["step"] == 0


def test_start_response_again_with_exc_info_before_the_headers_replaces_them() -> None:
    """PEP 3333's other case: with ``exc_info`` and no headers sent, the
    new status stands (a 500: the session's change is not saved)."""
    store = MemoryStore()

    def recovers(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ[ENVIRON_KEY]["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("rendering failed")
        except ValueError:
            start_response(
                "500 Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"error page"]

    middleware = SessionMiddleware(validator(recovers), store, environ_key=ENVIRON_KEY)
    head, body, errors = serve(validator(middleware), None)
    assert errors == "" and body == b"error page"
    assert head.startswith("HTTP/1.0 500 Error")
    assert header_values(head, "Set-Cookie") == []
    assert len(store._records) == 0


def test_a_stream_starting_after_an_empty_chunk_is_not_held_back() -> None:
    """A generator may yield an empty chunk before it calls ``start_response``
    (PEP 3333 asks only that it be called before the first body bytes). The
    middleware decided the body's kind on that chunk, with no status yet, and
    passed the whole stream one chunk behind: each event of a server-sent
    stream waited for the next one to be made."""
    made: list[int] = []

    def events(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgisession"]["n"] = 1
        yield b""
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for number in range(3):
            made.append(number)
            yield b"data: %d\n\n" % number

    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    body = SessionMiddleware(events, MemoryStore())(
        environ, lambda status, headers, exc_info=None: lambda data: None
    )
    sent_when_made = [(chunk, made[-1]) for chunk in body if chunk]
    body.close()  # type: ignore[attr-defined]
    assert sent_when_made == [(b"data: %d\n\n" % n, n) for n in range(3)]


@pytest.mark.parametrize("body", ["list", "generator"])
@pytest.mark.parametrize(
    "bad_header",
    [("X-Note", b"bytes"), (b"X-Note", "bytes name"), ("X-Note", "a\r\nSet-Cookie: x")],
    ids=["bytes-value", "bytes-name", "crlf-value"],
)
def test_a_header_no_server_sends_fails_the_request_before_the_save(
    body: str, bad_header: tuple[Any, Any]
) -> None:
    """wsgiref, waitress and gunicorn refuse a header that is not a native
    string, and waitress and gunicorn one that holds a CR or LF (wsgiref
    sends it: here the session's cookie response carried an injected
    ``Set-Cookie``). The middleware passed such headers on after the save:
    the client got a 500 and the session kept the change (docs/session.rst:
    a response that fails saves nothing). Checked before the save (PEP
    3333 asks a server to check the headers early), the request fails as
    an exception from the app does."""
    store = MemoryStore()
    existing = Session(store)
    existing["n"] = 1
    existing.save()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgisession"]["n"] = 2
        start_response("200 OK", [("Content-Type", "text/plain"), bad_header])
        return [b"page"] if body == "list" else iter([b"page"])

    head, _, errors = serve(
        SessionMiddleware(app, store), f"sessionid={existing.session_key}"
    )
    assert head.startswith("HTTP/1.0 500"), head
    assert "names and values must be str without CR or LF" in errors
    assert stored_n(store, existing.session_key) == 1
