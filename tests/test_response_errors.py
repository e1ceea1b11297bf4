"""PEP 3333's error cases at the response: an exception from the body's
``close()`` is the app's (nothing of the request is saved), a result the
middleware cannot hand over after a failed save is closed, and once the app
has yielded a chunk its headers count as sent (``start_response`` with
``exc_info`` raises, as a server's does)."""

from __future__ import annotations

import io
import sys
import wsgiref.handlers
import wsgiref.util
from typing import Any

import pytest
from werkzeug.debug import DebuggedApplication

from wsgisession import SessionMiddleware
from wsgisession.errors import UnserializableValue
from wsgisession.stores import MemoryStore


class Failed(Exception):
    pass


def saved(middleware: SessionMiddleware) -> str:
    existing = middleware.open_session()
    existing["step"] = 0
    existing.save()
    key = existing.session_key
    assert key is not None
    return key


@pytest.mark.parametrize("length", [None, "6"])
def test_a_close_that_raises_after_changing_the_session_saves_nothing_of_it(
    length: str | None,
) -> None:
    """docs/session.rst: "an exception from the app (also from its body
    iterator, after start_response), saves nothing". The body's close() is
    the app's code; when it raises, what it changed must not be saved."""

    class Body:
        def __init__(self, session: Any) -> None:
            self.session = session

        def __iter__(self) -> Any:
            yield b"chunk\n"

        def close(self) -> None:
            self.session["step"] = 99  # e.g. a commit hook that then fails
            raise Failed("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        headers = [("Content-Type", "text/plain")]
        if length:
            headers.append(("Content-Length", length))
        start_response("200 OK", headers)
        return Body(environ["wsgisession"])

    middleware = SessionMiddleware(app, MemoryStore())
    key = saved(middleware)
    body = middleware(
        {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"},
        lambda s, h, e=None: lambda data: None,
    )
    assert list(body) == [b"chunk\n"]
    with pytest.raises(Failed):
        body.close()  # type: ignore[attr-defined]
    assert middleware.open_session(key)["step"] == 0


def test_a_stream_whose_generator_raises_while_closed_saves_nothing() -> None:
    """The client left mid-stream; the server closes the body, and the app's
    generator raises from its cleanup: an exception from the app."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        try:
            for step in range(1, 10):
                session["step"] = step
                yield b"data\n"
        finally:
            raise Failed("cleanup failed")

    middleware = SessionMiddleware(app, MemoryStore())
    key = saved(middleware)
    body = middleware(
        {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"},
        lambda s, h, e=None: lambda data: None,
    )
    chunks = iter(body)
    next(chunks)
    next(chunks)
    with pytest.raises(Failed):
        body.close()  # type: ignore[attr-defined]
    assert middleware.open_session(key)["step"] == 0


def test_a_file_wrapper_is_closed_when_the_save_fails() -> None:
    """The app returns environ["wsgi.file_wrapper"](file); the save before the
    headers fails. The middleware raises instead of returning the wrapper, so
    the server never gets it to close: the middleware must close it (PEP 3333:
    close() is called "whether the request was completed normally, or
    terminated early due to an application error")."""
    opened: list[io.BytesIO] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgisession"]["bad"] = object()  # the JSON serializer refuses it
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = io.BytesIO(b"file contents")
        opened.append(handle)
        return environ["wsgi.file_wrapper"](handle)

    middleware = SessionMiddleware(app, MemoryStore())
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    wsgiref.util.setup_testing_defaults(environ)
    environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    with pytest.raises(UnserializableValue):
        middleware(environ, lambda s, h, e=None: lambda data: None)
    assert opened and opened[0].closed, "the app's file was left open"


def run_with_wsgiref(app: Any) -> bytes:
    stdout = io.BytesIO()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    wsgiref.util.setup_testing_defaults(environ)
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, io.StringIO(), environ, multithread=False
    )
    handler.run(app)
    return stdout.getvalue()


def failing_midway(environ: dict[str, Any], start_response: Any) -> Any:
    environ["wsgisession"].get("x")  # a page that reads its session
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")]
    )
    yield b"partial-"
    raise RuntimeError("boom")


def test_an_error_page_after_a_yielded_chunk_does_not_carry_that_chunk() -> None:
    """PEP 3333: once the app has yielded a non-empty chunk the headers count
    as sent, and start_response(..., exc_info) must raise. The middleware
    held the chunk back (a body of declared length goes one chunk behind) and
    took the error page's headers instead: the 200's first chunk goes out
    under the 500's headers, and the body overruns the 500's Content-Length
    (the extra bytes desynchronise a keep-alive connection)."""
    app = SessionMiddleware(
        DebuggedApplication(failing_midway, evalex=False), MemoryStore()
    )
    raw = run_with_wsgiref(app)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    if "content-length" in headers:
        assert len(body) <= int(headers["content-length"]), (
            f"{lines[0]!r}: {len(body)} body bytes for Content-Length "
            f"{headers['content-length']}; body starts {body[:20]!r}"
        )
    assert not (lines[0].split()[1] == "500" and body.startswith(b"partial-"))


def test_pep_3333_error_handling_after_a_yielded_chunk() -> None:
    """The PEP's own pattern, in the app: catch, then start_response with
    exc_info and an error page. After a yielded chunk it must raise."""
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")]
        )
        try:
            yield b"partial-"
            raise RuntimeError("boom")
        except RuntimeError:
            try:
                start_response(
                    "500 Oops",
                    [("Content-Type", "text/plain"), ("Content-Length", "5")],
                    sys.exc_info(),
                )
            except RuntimeError as exc:
                raised.append(exc)
                return
            yield b"error"

    raw = run_with_wsgiref(SessionMiddleware(app, MemoryStore()))
    assert raised, (
        f"start_response accepted exc_info after a yielded chunk: {raw[:60]!r}"
    )
