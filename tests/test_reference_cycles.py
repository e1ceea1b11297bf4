"""A request leaves no reference cycle behind: its objects go when it ends.

Objects in a cycle wait for the cyclic garbage collector; a request's
environ (with its input stream) and session would live on until then.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import get

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?write`` counts in the session, ``?read`` reads it, else untouched."""
    session = environ["wsgisession"]
    if environ["QUERY_STRING"] == "write":
        session["n"] = session.get("n", 0) + 1
    elif environ["QUERY_STRING"] == "read":
        session.get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("young_heap", "collector_off")
@pytest.mark.parametrize("query", ["untouched", "read", "write"])
@pytest.mark.parametrize("cookie", ["own", "unknown", "none"])
def test_no_request_leaves_a_cycle(query: str, cookie: str) -> None:
    middleware = SessionMiddleware(app, store=MemoryStore())
    _, headers = get(middleware, "write")
    (set_cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    header = {
        "own": set_cookie.split(";", 1)[0],
        "unknown": "sessionid=" + "A" * 43,
        "none": None,
    }[cookie]
    gc.collect()
    for _ in range(20):
        status, _ = get(middleware, query, header)
        assert status.startswith("200")
    assert gc.collect() == 0


def error_page_app(environ: dict[str, Any], start_response: Any) -> Any:
    """An error page sent with ``exc_info`` from the ``except`` that caught
    the error (PEP 3333's own example): ``?list`` as a list, ``?stream``
    from a generator, ``?iterator`` as an iterator that is not a list (the
    middleware wraps it); ``?untouched`` as a list, the session left alone."""
    query = environ["QUERY_STRING"]
    if query != "untouched":
        session = environ["wsgisession"]
        session["n"] = session.get("n", 0) + 1
    try:
        raise ValueError("the app failed")
    except ValueError:
        if query == "stream":
            return _error_page(start_response, sys.exc_info())
        start_response("500 Internal Server Error", [], sys.exc_info())
    return iter([b"error"]) if query == "iterator" else [b"error"]


def _error_page(start_response: Any, exc_info: Any) -> Iterator[bytes]:
    start_response("500 Internal Server Error", [], exc_info)
    del exc_info
    yield b"error"


def closed_unread(app: Any, query: str) -> None:
    """A request whose client went away: the server closes the body unread."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": query}
    body = app(environ, lambda status, headers, exc_info=None: None)
    body.close()


@pytest.mark.usefixtures("young_heap", "collector_off")
@pytest.mark.parametrize("query", ["list", "untouched", "stream", "iterator", "unread"])
def test_an_error_page_sent_with_exc_info_leaves_no_cycle(query: str) -> None:
    """PEP 3333: a middleware's start_response keeps no reference to
    ``exc_info`` past its use: its traceback holds the app's frames, which
    hold start_response (the response, the session, the environ). Kept
    until the response ended, each error page tied its request to a cycle
    that only the garbage collector frees."""
    middleware = SessionMiddleware(error_page_app, store=MemoryStore())
    gc.collect()
    for _ in range(20):
        if query == "unread":
            closed_unread(middleware, "iterator")
        else:
            status, _ = get(middleware, query)
            assert status.startswith("500")
    assert gc.collect() == 0


@pytest.mark.usefixtures("young_heap", "collector_off")
def test_exc_info_raised_after_the_headers_went_out_leaves_no_cycle() -> None:
    """start_response(..., exc_info) once a chunk went out raises that
    error; the frame it is raised from must not keep ``exc_info``, which
    holds the error, whose traceback holds that frame."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["wsgisession"]["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("mid-body")
        except ValueError:
            with contextlib.suppress(ValueError):
                start_response("500 Oops", [], sys.exc_info())

    middleware = SessionMiddleware(app, store=MemoryStore())
    gc.collect()
    for _ in range(20):
        get(middleware)
    assert gc.collect() == 0
