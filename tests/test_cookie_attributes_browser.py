"""The cookie's attributes as Chromium keeps them (Debian's, see ``tests/browser.py``).

Each configuration's cookie is kept and sent back, and the deleting cookie
(same Domain, Path, SameSite, Secure, Partitioned) really removes it; a
``Max-Age`` beyond 400 days is cut to 400 days by the browser, which is
what ``wsgisession check`` warns about.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import serving, start_chromium, stop_chromium
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from wsgisession import SessionMiddleware
from wsgisession.deploycheck import BROWSER_MAX_AGE
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore

pytestmark = pytest.mark.slow

#: Names under these resolve to 127.0.0.1 in the browser.
HOSTS = "--host-resolver-rules=MAP *.test 127.0.0.1"


def counter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?set`` counts up, ``?flush`` ends the session; the body is the count."""
    session = environ["wsgisession"]
    if environ["QUERY_STRING"] == "flush":
        session.flush()
    elif environ["QUERY_STRING"] == "set":
        session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"n={session.get('n')}".encode()]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_chromium(profile, (HOSTS,))
    yield driver
    stop_chromium(driver, profile)


def cookies(driver: WebDriver) -> list[dict[str, Any]]:
    """Every cookie the browser holds, partitioned ones included."""
    found: list[dict[str, Any]] = driver.execute_cdp_cmd("Storage.getCookies", {})[
        "cookies"
    ]
    return found


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


@pytest.mark.parametrize(
    ("options", "host", "path"),
    [
        ({"cookie_partitioned": True}, "127.0.0.1", "/"),
        ({"cookie_samesite": "None"}, "localhost", "/"),
        ({"cookie_domain": ".Example.TEST"}, "www.example.test", "/"),
        ({"cookie_domain": "127.0.0.1"}, "127.0.0.1", "/"),
        ({"cookie_path": "/app", "cookie_samesite": "Strict"}, "127.0.0.1", "/app/x"),
    ],
)
def test_the_cookie_is_kept_and_its_deleting_cookie_removes_it(
    chromium: WebDriver, options: dict[str, Any], host: str, path: str
) -> None:
    chromium.execute_cdp_cmd("Storage.clearCookies", {})
    app = SessionMiddleware(counter_app, MemoryStore(), **options)
    with serving(app) as url:
        page = f"http://{host}:{url.rsplit(':', 1)[1]}{path}"
        chromium.get(page + "?set")
        chromium.get(page + "?set")
        assert body(chromium) == "n=2"
        assert [c["name"] for c in cookies(chromium)] == ["sessionid"]
        chromium.get(page + "?flush")
        assert cookies(chromium) == []


def test_browsers_keep_a_cookie_400_days_at_most(chromium: WebDriver) -> None:
    chromium.execute_cdp_cmd("Storage.clearCookies", {})
    app = SessionMiddleware(counter_app, MemoryStore(), cookie_age=2 * 365 * 86400)
    with serving(app) as url:
        before = time.time()
        chromium.get(url + "/?set")
        (cookie,) = cookies(chromium)
    assert (
        before + BROWSER_MAX_AGE - 5 < cookie["expires"] < time.time() + BROWSER_MAX_AGE
    )


def test_an_internationalized_domain_is_sent_as_the_browser_spells_it(
    chromium: WebDriver,
) -> None:
    """Chromium asks for ``www.faß.test`` as ``www.xn--fa-hia.test`` (UTS 46,
    non-transitional) and drops a cookie of ``Domain=fass.test``, the form
    Python's IDNA 2003 codec gives: with ``cookie_domain = faß.test`` every
    request began a new session. Such a name is refused, pointing to the
    form the browser keeps."""
    chromium.execute_cdp_cmd("Storage.clearCookies", {})
    with pytest.raises(ConfigError, match="xn--fa-hia"):
        SessionMiddleware(counter_app, MemoryStore(), cookie_domain="faß.test")
    app = SessionMiddleware(counter_app, MemoryStore(), cookie_domain="xn--fa-hia.test")
    with serving(app) as url:
        page = f"http://www.faß.test:{url.rsplit(':', 1)[1]}/"
        chromium.get(page + "?set")
        chromium.get(page + "?set")
        assert body(chromium) == "n=2"
