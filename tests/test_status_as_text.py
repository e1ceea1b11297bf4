"""The save's reading of the app's status, and the header scan that adds Vary.

A status is a server error from ``"500"`` up, compared as text
(``cookies.SERVER_ERRORS_FROM``): for the three digits PEP 3333 asks a status
to begin with, the same as by number, on the fast path of a complete body
(``handling._send_as_written``) and the general one (a streamed body). A
status that does not begin with three digits is the server's to judge: the
middleware passed it to ``int()`` and raised ValueError out of the request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wsgisession import SessionMiddleware
from wsgisession.cache_headers import lengths_rule_out_caching_headers
from wsgisession.config import Settings
from wsgisession.cookies import SET, SessionState, decide
from wsgisession.stores import MemoryStore

Environ = dict[str, Any]


def _app(status: str, streamed: bool) -> Callable[..., Any]:
    """An app that starts a new session and answers ``status``."""

    def app(environ: Environ, start_response: Callable[..., Any]) -> Any:
        environ["wsgisession"]["cart"] = 3
        start_response(status, [("Content-Type", "text/plain")])
        if streamed:
            return iter([b"ok"])  # a generator-like body: the general path
        return [b"ok"]

    return app


def _serve(
    middleware: SessionMiddleware, streamed: bool
) -> tuple[str, list[tuple[str, str]]]:
    started: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started[:] = [status, list(headers)]
        return lambda data: None

    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "wsgi.url_scheme": "http",
    }
    result = middleware(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], started[1]


def _cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name.lower() == "set-cookie"]


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "streamed"])
@pytest.mark.parametrize(
    ("status", "saves"),
    [
        ("200 OK", True),
        ("499 Client Closed", True),
        ("500 Internal Server Error", False),
        ("503 Service Unavailable", False),
        ("2xx Odd", True),  # int("2xx") raised ValueError out of the request
        ("5xx Odd", False),  # as text, from "500" up: a server error
        ("OK", False),  # a letter sorts after the digits: as a 5xx (session.rst)
    ],
)
def test_a_status_is_a_server_error_from_500_up_as_text(
    status: str, saves: bool, streamed: bool
) -> None:
    store = MemoryStore()
    middleware = SessionMiddleware(_app(status, streamed), store=store)
    sent_status, headers = _serve(middleware, streamed)
    assert sent_status == status  # passed on as the app gave it
    if streamed:  # its headers went out first, with a reserved key's cookie
        assert len(store._records) == (1 if saves else 0)
        return
    assert len(_cookies(headers)) == (1 if saves else 0)
    assert len(store._records) == (1 if saves else 0)


@pytest.mark.parametrize("save_on_error", [False, True])
def test_a_5xx_saves_with_save_on_error_only(save_on_error: bool) -> None:
    store = MemoryStore()
    middleware = SessionMiddleware(
        _app("500 Internal Server Error", False),
        store=store,
        save_on_error=save_on_error,
    )
    _status, headers = _serve(middleware, False)
    assert len(_cookies(headers)) == int(save_on_error)
    assert len(store._records) == int(save_on_error)


def test_a_status_that_is_not_a_str_is_refused_before_the_save() -> None:
    store = MemoryStore()
    middleware = SessionMiddleware(_app(b"200 OK", False), store=store)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="status"):
        _serve(middleware, False)
    assert store._records == {}


def test_decide_reads_every_three_digit_status_as_its_number() -> None:
    settings = Settings()
    state = SessionState(accessed=True, modified=True, empty=False, had_cookie=False)
    for number in range(100, 1000):
        status = f"{number} Reason"
        action = decide(state, settings, status)
        assert (action is SET) == (number < 500), status


def _names(*names: str) -> Iterator[tuple[str, str]]:
    return ((name, "x") for name in names)


@pytest.mark.parametrize(
    ("names", "ruled_out"),
    [
        ((), True),
        (("Content-Type", "Content-Length", "Set-Cookie"), True),
        (("Vary",), False),
        (("vary",), False),
        (("Cache-Control",), False),
        (("Content-Type", "ETag"), False),  # 4 characters: looked at closely
        (("Content-Type", "Last-Modified"), False),  # 13 characters
        (("X-Vary", "Cache-Controls"), True),
    ],
)
def test_lengths_rule_out_caching_headers(
    names: tuple[str, ...], ruled_out: bool
) -> None:
    assert lengths_rule_out_caching_headers(_names(*names)) is ruled_out
    # the names only are read: a header given as a list works as a pair does
    assert lengths_rule_out_caching_headers([[name, "x"] for name in names]) is (
        ruled_out
    )
