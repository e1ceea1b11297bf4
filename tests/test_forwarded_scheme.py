"""``cookie_secure = auto`` behind a proxy that ends TLS, over a real server.

``auto`` reads ``wsgi.url_scheme`` only: a forwarding header is not trusted
(any client can send one), so behind a TLS proxy without ``ProxyFix`` (or
the server's own setting) the cookie goes out without ``Secure``. That
used to be silent; a request whose ``X-Forwarded-Proto`` or ``Forwarded``
says ``https`` while the scheme is ``http`` now logs a WARNING (at most
one a minute) naming the fix.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_stacked_error_handlers import wsgiref_server
from werkzeug.middleware.proxy_fix import ProxyFix

from wsgisession import SessionMiddleware, request_scheme
from wsgisession.logthrottle import ThrottledWarning
from wsgisession.stores import MemoryStore

LOGGER = "wsgisession.request_scheme"


def writing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Writes the session: every response sets the cookie."""
    environ["wsgisession"]["seen"] = True
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throttle of its own per test: another test's WARNING must not quiet it."""
    monkeypatch.setattr(
        request_scheme,
        "_warn_forwarded_https",
        ThrottledWarning(logging.getLogger(LOGGER)),
    )


@pytest.fixture
def caplog_warnings(
    caplog: pytest.LogCaptureFixture,
) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    yield caplog


def session_cookie_over_http(app: Any, headers: dict[str, str]) -> str:
    """The one ``Set-Cookie`` of a GET sent with ``headers`` to ``app``,
    served by wsgiref on loopback."""
    with wsgiref_server(app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/", headers=headers)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
    cookies = response.headers.get_all("Set-Cookie") or []
    assert response.status == 200 and len(cookies) == 1, cookies
    return cookies[0]


def attributes(cookie: str) -> list[str]:
    return [part.strip() for part in cookie.split(";")[1:]]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


@pytest.mark.slow  # a server of its own
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Proto", "HTTPS"),
        ("X-Forwarded-Proto", "https, http"),
        ("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"),
        ("Forwarded", 'for="[2001:db8::1]";Proto="https"'),
    ],
)
def test_auto_behind_a_tls_proxy_without_proxyfix_warns(
    caplog_warnings: pytest.LogCaptureFixture, header: str, value: str
) -> None:
    app = SessionMiddleware(writing_app, store=MemoryStore(), cookie_secure="auto")
    cookie = session_cookie_over_http(app, {header: value})
    assert "Secure" not in attributes(cookie)  # the header is not trusted
    (warning,) = warnings_of(caplog_warnings)
    assert f"request's {header} header says the client used https" in warning
    assert "ProxyFix" in warning and "cookie_secure = true" in warning


def proxyfix_outside() -> Any:
    return ProxyFix(
        SessionMiddleware(writing_app, store=MemoryStore(), cookie_secure="auto"),
        x_proto=1,
    )


def proxyfix_inside() -> Any:
    """ProxyFix between the middleware and the app: it sets the scheme
    in the environ the middleware reads at the save."""
    return SessionMiddleware(
        ProxyFix(writing_app, x_proto=1), store=MemoryStore(), cookie_secure="auto"
    )


@pytest.mark.slow  # a server of its own
@pytest.mark.parametrize("make_app", [proxyfix_outside, proxyfix_inside])
def test_auto_behind_proxyfix_is_secure_and_quiet(
    caplog_warnings: pytest.LogCaptureFixture, make_app: Any
) -> None:
    cookie = session_cookie_over_http(make_app(), {"X-Forwarded-Proto": "https"})
    assert "Secure" in attributes(cookie)
    assert not caplog_warnings.records


@pytest.mark.slow  # a server of its own
@pytest.mark.parametrize(
    ("secure", "headers"),
    [
        ("auto", {}),  # plain http in development
        ("auto", {"X-Forwarded-Proto": "http"}),
        ("auto", {"Forwarded": "for=192.0.2.60;proto=http"}),
        ("auto", {"Forwarded": "for=192.0.2.60;proto=httpsx"}),
        (False, {"X-Forwarded-Proto": "https"}),  # the operator's choice
        (True, {"X-Forwarded-Proto": "https"}),
    ],
)
def test_no_warning_where_nothing_says_https_or_secure_is_fixed(
    caplog_warnings: pytest.LogCaptureFixture, secure: Any, headers: dict[str, str]
) -> None:
    app = SessionMiddleware(writing_app, store=MemoryStore(), cookie_secure=secure)
    cookie = session_cookie_over_http(app, headers)
    assert ("Secure" in attributes(cookie)) is (secure is True)
    assert not caplog_warnings.records


def test_a_client_repeating_the_header_gets_one_warning_a_minute(
    caplog_warnings: pytest.LogCaptureFixture,
) -> None:
    environ = {"wsgi.url_scheme": "http", "HTTP_X_FORWARDED_PROTO": "https"}
    for _ in range(50):
        assert request_scheme.auto_secure(environ) is False
    assert len(warnings_of(caplog_warnings)) == 1
    assert request_scheme.auto_secure({**environ, "wsgi.url_scheme": "https"})
