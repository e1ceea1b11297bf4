"""A session whose key changes after the response's headers went out.

``cycle_key()`` (a login) or ``bind_user()`` in a streamed body moves the
data to a key the client never receives, and deletes the record its cookie
names: the client is logged out and its data is gone. That cannot be
undone once the headers are out, but it must not pass silently: like a
change to a new session after the headers, it is logged as a WARNING.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import FakeClock

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore

Environ = dict[str, Any]


def _streamed_login(environ: Environ, start_response: Any) -> Any:
    session = environ["wsgisession"]
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    yield b"data: hello\n"
    session.cycle_key()  # logs the user in: too late for the cookie
    session["user"] = "ann"
    yield b"data: welcome\n"


def _call(middleware: SessionMiddleware, cookie: str | None) -> list[Any]:
    environ: Environ = {"REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"}
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    sent: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        sent.append(headers)
        return lambda data: None

    body = middleware(environ, start_response)
    try:
        assert b"".join(body) == b"data: hello\ndata: welcome\n"
    finally:
        body.close()  # type: ignore[attr-defined]
    return sent


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_a_key_changed_after_the_headers_went_out_is_logged(
    existing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = SessionMiddleware(_streamed_login, MemoryStore())
    cookie = None
    if existing:
        session = middleware.open_session()
        session["visits"] = 1
        session.save()
        cookie = f"sessionid={session.session_key}"
    with caplog.at_level("WARNING", logger="wsgisession"):
        _call(middleware, cookie)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, caplog.text
    assert "after the response headers were sent" in warnings[0].getMessage()


def test_a_change_after_the_headers_to_the_key_the_client_holds_is_saved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The control: no key change, the late change is saved and nothing logged."""

    def stream(environ: Environ, start_response: Any) -> Any:
        session = environ["wsgisession"]
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield b"data: hello\n"
        session["user"] = "ann"
        yield b"data: welcome\n"

    middleware = SessionMiddleware(stream, MemoryStore())
    session = middleware.open_session()
    session["visits"] = 1
    session.save()
    key = session.session_key
    with caplog.at_level("WARNING", logger="wsgisession"):
        _call(middleware, f'other=1; sessionid="{key}"')
    assert caplog.records == []
    assert dict(middleware.open_session(key)) == {"visits": 1, "user": "ann"}


def test_late_change_warnings_a_client_repeats_are_rate_limited(
    frozen_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Any client without a cookie meets the new-session case of a page that
    writes to the session late: one request after another must not fill
    the logs (at most one WARNING a minute, as for bad cookies)."""

    def stream(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield b"data: hello\n"
        environ["wsgisession"]["csrf"] = "token"  # a form's token, made late
        yield b"data: welcome\n"

    middleware = SessionMiddleware(stream, MemoryStore())
    with caplog.at_level("DEBUG", logger="wsgisession.response"):
        for _ in range(50):
            _call(middleware, None)
        frozen_clock.advance(61)
        _call(middleware, None)
    records = [r for r in caplog.records if "headers were sent" in r.getMessage()]
    warnings = [r for r in records if r.levelname == "WARNING"]
    assert len(records) == 51
    assert len(warnings) == 2, caplog.text
    assert "49 more like it" in warnings[1].getMessage()
