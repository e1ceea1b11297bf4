"""Headers that waitress and gunicorn take pass the middleware's check.

PEP 3333 asks for a list of pairs of native strings, and the middleware
checks the app's headers before a save (``app_headers``). Two things those
servers take failed there: headers given as a generator (read once by the
check, so the app's own headers were lost and only the session's went out;
a read's ``Vary`` was added the same way), and a ``str`` subclass (an
``enum.StrEnum`` member, markupsafe's ``Markup``), refused with
``AssertionError`` though servers send it.
"""

from __future__ import annotations

import enum
import http.client
import wsgiref.util
from collections.abc import Callable
from typing import Any

import pytest
from test_stacked_error_handlers import waitress_server

from wsgisession import Session, SessionMiddleware
from wsgisession.stores import MemoryStore

App = Callable[[dict[str, Any], Callable[..., Any]], Any]


class MediaType(enum.StrEnum):
    """A header value of a ``str`` subclass, as apps keep them."""

    TEXT = "text/plain"


class HeaderName(str):
    """A header name of a ``str`` subclass."""


def _called(app: App, cookie: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Run ``app`` behind the middleware once; the status and headers it sent."""
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    sent: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        sent.append((status, list(headers)))
        return lambda data: None

    body = app(environ, start_response)
    try:
        assert b"".join(body) == b"page"
    finally:
        getattr(body, "close", lambda: None)()
    assert len(sent) == 1
    return sent[0]


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


@pytest.mark.parametrize("use", ["written", "read"])
@pytest.mark.parametrize("body", ["list", "generator"])
def test_headers_given_as_a_generator_all_go_out(use: str, body: str) -> None:
    store = MemoryStore()
    existing = Session(store)
    existing["n"] = 1
    existing.save()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        session = environ["wsgisession"]
        if use == "written":
            session["n"] = 2
        else:
            assert session["n"] == 1
        start_response(
            "200 OK",
            (pair for pair in [("Content-Type", "text/plain"), ("X-App", "1")]),
        )
        return [b"page"] if body == "list" else iter([b"page"])

    status, headers = _called(
        SessionMiddleware(app, store), f"sessionid={existing.session_key}"
    )
    assert status == "200 OK"
    assert _names(headers)[:2] == ["Content-Type", "X-App"]
    assert "Vary" in _names(headers)
    assert Session(store, None, existing.session_key)["n"] == (
        2 if use == "written" else 1
    )


def _subclassed_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    environ["wsgisession"]["n"] = 1
    start_response(
        "200 OK", [("Content-Type", MediaType.TEXT), (HeaderName("X-App"), "1")]
    )
    return [b"page"]


def test_a_str_subclass_header_is_taken_and_the_session_saved() -> None:
    store = MemoryStore()
    status, headers = _called(SessionMiddleware(_subclassed_app, store))
    assert status == "200 OK"
    assert ("Content-Type", "text/plain") in headers and ("X-App", "1") in headers
    assert "Set-Cookie" in _names(headers)
    assert len(store._records) == 1


@pytest.mark.slow  # a server of its own
def test_waitress_serves_a_str_subclass_header_behind_the_middleware() -> None:
    store = MemoryStore()
    with waitress_server(SessionMiddleware(_subclassed_app, store)) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.read() == b"page"
        finally:
            connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("X-App") == "1"
    assert (response.getheader("Set-Cookie") or "").startswith("sessionid=")
    assert len(store._records) == 1
