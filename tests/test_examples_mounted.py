"""The runnable examples mounted under ``/app`` (``SCRIPT_NAME``), over a real server.

Behind a proxy or werkzeug's ``DispatcherMiddleware`` an app lives under a
prefix. The examples' login and logout redirected to ``/``, the site's
root, not the app's: the user left the app at each login. A client with a
cookie jar (urllib, following the 303 as a browser does) logs in and out
of each example served by wsgiref under ``/app``, and must stay there.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_examples import load_example
from test_stacked_error_handlers import wsgiref_server
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from wsgisession.contrib.flask import find_middleware


def site_root(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Another app at the site's root: where the examples sent users."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the site's root, not the app"]


def example_app(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example's WSGI app, as its module makes it."""
    module = load_example(name, monkeypatch)
    if name == "pyramid_app":
        return module.main()
    if name == "flask_app":
        assert find_middleware(module.app) is not None
        return module.app
    return module.application


class Browser:
    """urllib with a cookie jar: keeps the session cookie, follows redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def visit(self, path: str, form: dict[str, str] | None = None) -> tuple[str, str]:
        """The final URL's path and the page, after any redirect."""
        data = None if form is None else urllib.parse.urlencode(form).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as response:
            return urllib.parse.urlsplit(
                response.geturl()
            ).path, response.read().decode()


def csrf_field(page: str) -> dict[str, str]:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    return {"csrf_token": match.group(1)} if match else {}


@pytest.mark.slow  # a server of its own
@pytest.mark.parametrize(
    "name", ["plain_wsgi", "flask_app", "bottle_app", "pyramid_app"]
)
def test_login_and_logout_stay_in_the_mounted_app(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the examples' stores open relative paths
    site = DispatcherMiddleware(site_root, {"/app": example_app(name, monkeypatch)})
    with wsgiref_server(site) as port:
        browser = Browser(f"http://127.0.0.1:{port}")
        where, page = browser.visit("/app/")
        assert "Hello, stranger. Visits in this session: 1." in page
        where, page = browser.visit("/app/login", {"user": "ada", **csrf_field(page)})
        assert where == "/app/", page
        assert "Hello, ada. Visits in this session: 2." in page
        where, page = browser.visit("/app/logout", csrf_field(page))
        assert where == "/app/", page
        assert "Hello, stranger. Visits in this session: 1." in page
