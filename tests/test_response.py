"""The response object and the one cookie policy, called directly."""

from __future__ import annotations

import io
import wsgiref.handlers
import wsgiref.util
from typing import Any

import pytest

from wsgisession import SessionMiddleware
from wsgisession.config import Settings
from wsgisession.cookies import CookieAction, SessionState, decide, is_touched
from wsgisession.stores import MemoryStore

SET, DELETE, NOTHING = CookieAction.SET, CookieAction.DELETE, CookieAction.NOTHING


def state(
    accessed: bool = True,
    modified: bool = False,
    empty: bool = False,
    had_cookie: bool = False,
) -> SessionState:
    return SessionState(accessed, modified, empty, had_cookie)


@pytest.mark.parametrize(
    ("session", "settings", "status", "expected"),
    [
        (state(accessed=False), Settings(), "200 OK", NOTHING),
        (state(), Settings(), "200 OK", NOTHING),
        (state(modified=True), Settings(), "200 OK", SET),
        (state(modified=True), Settings(), "500 Oops", NOTHING),
        (state(), Settings(save_every_request=True), "200 OK", SET),
        (state(empty=True, modified=True), Settings(), "200 OK", NOTHING),
        (state(empty=True, had_cookie=True), Settings(), "200 OK", DELETE),
        (state(empty=True, had_cookie=True), Settings(), "503 Down", DELETE),
        (state(modified=True, had_cookie=True), Settings(), "302 Found", SET),
    ],
)
def test_cookie_policy(
    session: SessionState, settings: Settings, status: str, expected: CookieAction
) -> None:
    assert decide(session, settings, status) is expected


def test_untouched_means_no_access_no_change_no_forced_save() -> None:
    assert not is_touched(False, False, Settings())
    assert is_touched(True, False, Settings())
    assert is_touched(False, True, Settings())
    assert is_touched(False, False, Settings(save_every_request=True))


def run_with_wsgiref(app: Any, cookie: str = "") -> tuple[str, str]:
    """Run ``app`` once under wsgiref's handler; (status and headers, error log)."""
    stdout, stderr = io.BytesIO(), io.StringIO()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    wsgiref.util.setup_testing_defaults(environ)
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, stderr, environ, multithread=False
    )
    handler.run(app)
    return stdout.getvalue().decode("latin-1"), stderr.getvalue()


def legacy_write_app(touch: bool) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if touch:
            environ["wsgisession"]["n"] = 1
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"returned"]

    return app


@pytest.mark.parametrize("touch", [False, True])
def test_legacy_write_then_a_list_starts_the_response_once(touch: bool) -> None:
    """Regression: the untouched fast path called start_response a second time."""
    middleware = SessionMiddleware(legacy_write_app(touch), MemoryStore())
    output, errors = run_with_wsgiref(middleware)
    assert errors == ""
    assert output.startswith("HTTP/1.0 200 OK"), output
    assert output.endswith("written, returned")
    assert ("Set-Cookie: sessionid=" in output) is touch


def test_detached_response_finishes_with_the_cookie_headers() -> None:
    """What the Flask adapter uses for requests no middleware handles."""
    middleware = SessionMiddleware(legacy_write_app(False), MemoryStore())
    response = middleware.detached_response({})
    assert response.finish("200 OK") == []
    response.session["n"] = 1
    (name, value), *rest = response.finish("200 OK")
    assert name == "Set-Cookie" and value.startswith("sessionid=") and rest == []
    key = response.session.session_key
    assert middleware.open_session(key)["n"] == 1
