"""A Flask app on ``wsgisession.contrib.flask.init_app``, in a real browser.

What a browser keeps is checked in the browser itself (Debian's headless
Chromium, see ``tests/browser.py``): the cookie persists across reloads,
``set_expiry(0)`` makes a browser-session cookie, HttpOnly hides it from
``document.cookie``, ``cycle_key()`` changes it and keeps the data,
``flush()`` removes it, and a session too large for a cookie raises before
any header is sent.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import cookie, serving
from flask import Flask, session
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from wsgisession.contrib.flask import init_app
from wsgisession.errors import SessionCookieTooLarge
from wsgisession.stores import SignedCookieStore, SQLiteStore
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow

SECRET = "flask-browser-" + "sd091f2afe988afd4cea4181b84eaaf780749aed"


def make_app(store: Store) -> Flask:
    """A small Flask app whose views each do one thing to ``flask.session``."""
    app = Flask(__name__)

    @app.get("/")
    def show() -> Any:
        response = app.make_response(f"value={session.get('value', 'none')}")
        response.set_cookie("visible", "yes", httponly=False)  # script can see this one
        return response

    @app.get("/set/<value>")
    def set_value(value: str) -> str:
        session.permanent = (
            True  # as in Flask, a session is not permanent unless made so
        )
        session["value"] = value
        return f"value={value}"

    @app.get("/browser-close")
    def browser_close() -> str:
        session.set_expiry(0)
        return "browser-close"

    @app.get("/cycle")
    def cycle() -> str:
        session.cycle_key()
        return f"value={session.get('value', 'none')}"

    @app.get("/flush")
    def flush() -> str:
        session.flush()
        return "flushed"

    @app.get("/big")
    def big() -> str:
        session["big"] = secrets.token_urlsafe(4000)  # random: no compression helps
        return "big"

    @app.after_request
    def name_no_icon(response: Any) -> Any:
        """Chrome asks for ``/favicon.ico`` after a page loads; that request
        refreshes a permanent session (``SESSION_REFRESH_EACH_REQUEST``, as
        in Flask) and re-sends its cookie, which, still in flight when the
        next page cycled the key, could land last and put back the old one
        (docs/migrating.rst). Pages that name an icon are asked for none."""
        if response.mimetype == "text/html":
            response.set_data(b'<link rel="icon" href="data:,">' + response.get_data())
        return response

    init_app(app, store=store, cookie_name="sessionid")
    return app


class HeaderWatch:
    """Outermost layer: whether an exception passed before the headers were sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.raised: list[tuple[type[BaseException], bool]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        started: list[str] = []

        def watch(status: str, headers: Any, exc_info: Any = None) -> Any:
            started.append(status)
            return start_response(status, headers, exc_info)

        result = None
        try:
            result = self.app(environ, watch)
            yield from result  # the middleware saves while the body is iterated
        except Exception as exc:
            self.raised.append((type(exc), bool(started)))
            raise
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


@pytest.fixture
def flask_url(tmp_path: Path) -> Iterator[str]:
    with serving(make_app(SQLiteStore(tmp_path / "sessions.sqlite3"))) as url:
        yield url


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_the_cookie_persists_across_reloads(
    chromium: WebDriver, flask_url: str
) -> None:
    chromium.get(f"{flask_url}/set/apple")
    first = cookie(chromium, "sessionid")
    assert first is not None and "expiry" in first  # a persistent cookie
    for _ in range(3):
        chromium.get(f"{flask_url}/")
        assert body(chromium) == "value=apple"
        chromium.refresh()
        assert body(chromium) == "value=apple"
    again = cookie(chromium, "sessionid")
    assert again is not None and again["value"] == first["value"]


def test_set_expiry_0_makes_a_browser_session_cookie(
    chromium: WebDriver, flask_url: str
) -> None:
    chromium.get(f"{flask_url}/set/pear")
    persistent = cookie(chromium, "sessionid")
    assert persistent is not None and persistent["expiry"] > time.time() + 3600
    chromium.get(f"{flask_url}/browser-close")
    session_cookie = cookie(chromium, "sessionid")
    assert session_cookie is not None and "expiry" not in session_cookie
    chromium.get(f"{flask_url}/")
    assert body(chromium) == "value=pear"


def test_httponly_hides_the_cookie_from_script(
    chromium: WebDriver, flask_url: str
) -> None:
    chromium.get(f"{flask_url}/set/plum")
    chromium.get(f"{flask_url}/")
    visible = chromium.execute_script("return document.cookie")
    assert "visible=yes" in visible  # script can read cookies on this page...
    assert "sessionid" not in visible  # ...but not the session's
    found = cookie(chromium, "sessionid")
    assert found is not None and found["httpOnly"] is True


def test_cycle_key_changes_the_cookie_and_keeps_the_data(
    chromium: WebDriver, flask_url: str
) -> None:
    chromium.get(f"{flask_url}/set/fig")
    before = cookie(chromium, "sessionid")
    chromium.get(f"{flask_url}/cycle")
    assert body(chromium) == "value=fig"
    after = cookie(chromium, "sessionid")
    assert before is not None and after is not None
    assert after["value"] != before["value"]
    chromium.get(f"{flask_url}/")
    assert body(chromium) == "value=fig"


def test_flush_removes_the_cookie(chromium: WebDriver, flask_url: str) -> None:
    chromium.get(f"{flask_url}/set/kiwi")
    assert cookie(chromium, "sessionid") is not None
    chromium.get(f"{flask_url}/flush")
    assert cookie(chromium, "sessionid") is None
    chromium.get(f"{flask_url}/")
    assert body(chromium) == "value=none"


def test_a_cookie_over_the_limit_raises_before_any_header(chromium: WebDriver) -> None:
    watch = HeaderWatch(make_app(SignedCookieStore(SECRET)))
    with serving(watch) as url:
        chromium.get(f"{url}/set/lime")
        kept = cookie(chromium, "sessionid")
        chromium.get(f"{url}/big")
        assert body(chromium) != "big"  # the server's error page, not the view's
        assert watch.raised == [(SessionCookieTooLarge, False)]  # no header had left
        after = cookie(chromium, "sessionid")
        assert kept is not None and after is not None  # the browser kept a cookie
        # Not byte for byte: the page's /favicon.ico request, whenever it
        # comes, refreshes the permanent session's cookie (a new expiry).
        chromium.get(f"{url}/")
        assert body(chromium) == "value=lime"  # the old session, not the big one
