"""The demo against another site: forms posted from elsewhere, and true words per store."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator

import pytest
import webtest
from demo_process import DemoProcess

from wsgisession.demo import DemoApp
from wsgisession.demo.serve import ThreadingWSGIServer, listen
from wsgisession.stores import MemoryStore, SignedCookieStore

SECRET = "demo-hostile-" + "x56350c6a55fe0f898106b0231f45f1d977636a9"
HOST = "127.0.0.1:8080"
#: What a browser sends with a form posted by the demo's own page.
OWN_PAGE = {"Origin": f"http://{HOST}", "Sec-Fetch-Site": "same-origin"}
#: A form on another site; and one on another port of the same host, which
#: is the same *site*, so SameSite=Lax does not keep the cookie off it.
ELSEWHERE = {
    "another site": {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    "another port": {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
    "an opaque origin": {"Origin": "null"},
    "another port, Origin only": {"Origin": "http://127.0.0.1:9999"},
    "Sec-Fetch-Site only": {"Sec-Fetch-Site": "same-site"},
}


def _browser(app: DemoApp, agent: str) -> webtest.TestApp:
    return webtest.TestApp(
        app, extra_environ={"HTTP_HOST": HOST, "HTTP_USER_AGENT": agent}
    )


def _log_in(browser: webtest.TestApp, name: str) -> None:
    browser.get("/")
    browser.post("/", {"action": "log-in", "user": name}, headers=OWN_PAGE).follow()


@pytest.mark.parametrize("where", list(ELSEWHERE))
@pytest.mark.parametrize("action", ["revoke-others", "log-out", "flush", "race"])
def test_a_form_posted_from_elsewhere_changes_nothing(where: str, action: str) -> None:
    """A page elsewhere that posts the demo's form with the browser's cookie:
    "Sign out everywhere else", "Log out", "Flush" and the 20 requests ran.
    The docs say the POST routes of a "your devices" page need CSRF
    protection; the demo's had none."""
    app = DemoApp(MemoryStore(), "somewhere")
    laptop, phone = _browser(app, "Browser A"), _browser(app, "Browser B")
    _log_in(laptop, "alice")
    _log_in(phone, "alice")
    response = laptop.post(
        "/", {"action": action}, headers=ELSEWHERE[where], status=403
    )
    assert "Set-Cookie" not in response.headers
    assert "posted from another page" in response.text
    assert len(app.middleware.user_sessions("alice")) == 2
    session = app.middleware.open_session(laptop.cookies["sessionid"].strip('"'))
    assert session.user_id == "alice"
    assert not any(key.startswith("race-") for key in session)


@pytest.mark.parametrize("where", list(ELSEWHERE))
def test_a_login_posted_from_elsewhere_is_refused(where: str) -> None:
    """Login CSRF: a page elsewhere logs the visitor in under the attacker's
    name, whose own browser then lists the victim's device and can end it."""
    app = DemoApp(MemoryStore(), "somewhere")
    victim = _browser(app, "Victim's browser")
    victim.get("/")
    victim.post(
        "/",
        {"action": "log-in", "user": "mallory"},
        headers=ELSEWHERE[where],
        status=403,
    )
    assert app.middleware.user_sessions("mallory") == []


def test_forms_of_the_page_itself_and_of_clients_without_origin_work() -> None:
    app = DemoApp(MemoryStore(), "somewhere")
    browser = _browser(app, "Browser A")
    _log_in(browser, "alice")
    assert len(app.middleware.user_sessions("alice")) == 1
    plain = _browser(app, "curl")  # sends neither Origin nor Sec-Fetch-Site
    plain.get("/")
    plain.post("/", {"action": "log-in", "user": "bob"}, status=303)
    assert len(app.middleware.user_sessions("bob")) == 1


def test_behind_a_proxy_the_browsers_verdict_counts() -> None:
    """A cloud IDE forwards the port under its own https name: the Origin
    is not the Host the demo sees, yet the form is the demo's own."""
    app = DemoApp(MemoryStore(), "somewhere")
    browser = _browser(app, "Browser A")
    browser.get("/")
    proxied = {
        "Origin": "https://demo-8080.ide.example",
        "Sec-Fetch-Site": "same-origin",
    }
    browser.post("/", {"action": "log-in", "user": "alice"}, headers=proxied)
    assert len(app.middleware.user_sessions("alice")) == 1


@pytest.fixture
def served() -> Iterator[ThreadingWSGIServer]:
    """The demo served as the command serves it, on a free loopback port."""
    server = listen("127.0.0.1", 0, DemoApp(MemoryStore(), "somewhere"))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def _post(port: int, origin: str, cookie: str = "") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": origin,
        "Cookie": cookie,
    }
    connection.request("POST", "/", b"action=log-in&user=mallory", headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_over_http_a_foreign_origin_is_refused(
    served: ThreadingWSGIServer,
) -> None:
    port = served.server_port
    refused = _post(port, "http://127.0.0.1:9999")
    assert refused.status == 403 and refused.getheader("Set-Cookie") is None
    accepted = _post(port, f"http://127.0.0.1:{port}")
    assert accepted.status == 303
    assert accepted.getheader("Set-Cookie", "").startswith("sessionid=")


# -- the page's words on the cookie store ------------------------------------------------


def _report(text: str) -> str:
    match = re.search(r'id="report">(.*?)</p>', text, re.DOTALL)
    assert match, text
    return match.group(1)


def test_browser_close_on_the_cookie_store_names_no_record() -> None:
    """The cookie store keeps nothing on the server (the page says so), yet
    "Expire when the browser closes" said the server drops "the record"."""
    browser = webtest.TestApp(DemoApp(SignedCookieStore(SECRET), "the cookie"))
    browser.get("/")
    text = browser.post("/", {"action": "browser-close"}).follow().text
    expiry = re.search(r'id="expiry">(.*?)</td>', text, re.DOTALL)
    assert expiry, text
    assert "record" not in _report(text)
    assert "record" not in expiry.group(1)
    assert "1209600 s after the last change" in expiry.group(1)


# -- --host --------------------------------------------------------------------------


@pytest.mark.slow  # starts the demo in a subprocess
def test_the_demo_listens_on_the_ipv6_loopback() -> None:
    """``wsgisession demo --host ::1``, an address of every machine: it was
    refused with "give an address of this machine with --host"."""
    demo = DemoProcess("--store", "memory", "--host", "::1")
    try:
        match = re.search(r"http://\[::1\]:(\d+)/", "".join(demo.lines))
        assert match, demo.lines
        connection = http.client.HTTPConnection("::1", int(match.group(1)), timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200
        assert b"wsgisession demo" in response.read()
        connection.close()
    finally:
        demo.stop()
