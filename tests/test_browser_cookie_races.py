"""Requests of one page racing a new cookie, in a real browser.

A page's other requests (fetch(), images, the favicon) leave with the
cookie the browser held when they started. When the page's own response,
or a parallel one, gives the browser a new cookie meanwhile (``cycle_key()``
at login, a streamed page's new session), a response to one of those
requests must not delete it: the browser applies every ``Set-Cookie`` in
the order the responses arrive, and a deleting cookie drops whichever
cookie of that name it holds by then. Chromium is Debian's, headless (see
``tests/browser.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import cookie, serving
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore

pytestmark = pytest.mark.slow

#: Long enough for the browser to have applied the other response's cookie.
SETTLE = 0.5
WAIT = 10


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def shown(driver: WebDriver, element: str) -> str:
    """The text of ``element`` once the page's script has filled it."""
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, element).text != ""
    )
    return str(driver.find_element(By.ID, element).text)


class LoginPage:
    """A page that logs in with fetch('/login') while fetch('/me') is in flight.

    ``/me`` arrives with the old cookie; ``/login`` cycles the key only
    then, and ``/me`` answers only once the login's response has reached
    the browser, as a slower request of the same page does.
    """

    def __init__(self, touch: str) -> None:
        #: What /me does with the session: "reads" it after the login,
        #: "changes" it before (its save then finds the old key gone), or
        #: leaves it "untouched".
        self.touch = touch
        self.me_arrived = threading.Event()
        self.logged_in = threading.Event()
        self.me_cookie = ""

    def __call__(
        self, environ: dict[str, Any], start_response: Any
    ) -> Iterator[bytes] | list[bytes]:
        session = environ["wsgisession"]
        path = environ["PATH_INFO"]
        text = "asset"
        if path == "/page":
            start_response("200 OK", [("Content-Type", "text/html")])
            return [PAGE]
        if path == "/set":
            session["visits"] = 1
        elif path == "/login":
            self.me_arrived.wait(WAIT)
            session.cycle_key()
            session["user"] = "alice"
            self.logged_in.set()
        elif path == "/me":
            self.me_cookie = environ.get("HTTP_COOKIE", "")
            if self.touch == "changes":
                session["seen"] = 1
            self.me_arrived.set()
            self.logged_in.wait(WAIT)
            time.sleep(SETTLE)  # the login's response is in the browser by now
            if self.touch != "untouched":
                text = f"user={session.get('user')}"
        elif path == "/whoami":
            text = f"user={session.get('user')}"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]


PAGE = b"""<html><body><div id="done"></div><script>
Promise.all([fetch('/me'), fetch('/login')]).then(
  () => { document.getElementById('done').textContent = 'done'; });
</script></body></html>"""


@pytest.mark.parametrize("touch", ["reads", "changes", "untouched"])
def test_a_request_with_the_old_key_keeps_the_cookie_a_login_just_set(
    chromium: WebDriver, touch: str
) -> None:
    page = LoginPage(touch)
    # An asset request that never touches the session is still saved (so
    # answered) with save_every_request.
    middleware = SessionMiddleware(
        page, store=MemoryStore(), save_every_request=touch == "untouched"
    )
    with serving(middleware) as url:
        chromium.get(f"{url}/set")
        old = cookie(chromium, "sessionid")
        assert old is not None
        chromium.get(f"{url}/page")
        assert shown(chromium, "done") == "done"
        assert f"sessionid={old['value']}" in page.me_cookie  # /me had the old key
        new = cookie(chromium, "sessionid")
        assert new is not None and new["value"] != old["value"]
        chromium.get(f"{url}/whoami")
        assert body(chromium) == "user=alice"  # still logged in


def streaming_app(subrequest_done: threading.Event) -> Any:
    """A streamed page that starts a session; its script fetches /me while
    the page is still streaming."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        if environ["PATH_INFO"] == "/stream":
            session["cart"] = ["book"]
            start_response("200 OK", [("Content-Type", "text/html")])
            return stream(subrequest_done)
        text = f"cart={session.get('cart')}"
        if environ["PATH_INFO"] == "/me":
            subrequest_done.set()  # after the read: the page ends (and saves) next
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]

    return app


def stream(subrequest_done: threading.Event) -> Iterator[bytes]:
    yield (
        b'<html><body><div id="me"></div><script>'
        b"fetch('/me').then(r => r.text()).then("
        b"t => { document.getElementById('me').textContent = t; });"
        b"</script>" + b" " * 2048  # enough for the browser to run the script
    )
    subrequest_done.wait(WAIT)
    time.sleep(SETTLE)  # /me's response is in the browser by now
    yield b'<p id="end">end</p></body></html>'


def test_a_streamed_page_keeps_the_new_session_its_own_requests_carry(
    chromium: WebDriver,
) -> None:
    subrequest_done = threading.Event()
    middleware = SessionMiddleware(streaming_app(subrequest_done), store=MemoryStore())
    with serving(middleware) as url:
        chromium.get(f"{url}/stream")
        assert shown(chromium, "end") == "end"
        assert subrequest_done.is_set()  # /me ran while the page streamed
        assert (
            shown(chromium, "me") == "cart=None"
        )  # not saved yet: the page's end saves
        assert cookie(chromium, "sessionid") is not None
        chromium.get(f"{url}/")
        assert body(chromium) == "cart=['book']"  # the page's session, kept
