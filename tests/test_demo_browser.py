"""The demo in a real browser: each step of the tour, as a new user clicks it.

The demo runs as the README's command does (``wsgisession demo``, here on
a free port); Chromium is Debian's, headless (see ``tests/browser.py``).
With ``WSGISESSION_SCREENSHOTS=docs/_static`` the tests also keep the
screenshots shown on the quickstart page there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser import cookie, start_chromium, stop_chromium
from demo_process import DemoProcess
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

pytestmark = pytest.mark.slow

TWO_WEEKS = 14 * 24 * 3600


@pytest.fixture(scope="module")
def memory_demo() -> Iterator[DemoProcess]:
    demo = DemoProcess("--store", "memory")
    yield demo
    demo.stop()


@pytest.fixture(scope="module")
def cookie_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    state = tmp_path_factory.mktemp("state")
    demo = DemoProcess("--store", "cookie", env={"XDG_STATE_HOME": str(state)})
    yield demo
    demo.stop()


@pytest.fixture
def second_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Another browser: its own profile, so its own cookies."""
    profile = tmp_path_factory.mktemp("second-chromium-profile")
    driver = start_chromium(profile)
    yield driver
    stop_chromium(driver, profile)


def text(driver: WebDriver, element: str) -> str:
    return str(driver.find_element(By.ID, element).text)


def replaced(old: WebElement) -> Callable[[WebDriver], bool]:
    """Whether ``old`` has left the page: stale, or (Chromium, mid-navigation)
    a node that "does not belong to the document"."""

    def check(driver: WebDriver) -> bool:
        try:
            return bool(staleness_of(old)(driver))
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise

    return check


def click(driver: WebDriver, action: str) -> str:
    """Click the button of ``action``; the report the next page shows."""
    old = driver.find_element(By.ID, "report")
    driver.find_element(By.ID, action).click()
    WebDriverWait(driver, 10).until(replaced(old))  # the next page replaced it
    return text(driver, "report")


def screenshot(
    driver: WebDriver,
    name: str,
    tmp_path: Path,
    *,
    whole: bool = False,
    element: str = "now",
) -> None:
    """Keep a screenshot: in the test's folder, and in $WSGISESSION_SCREENSHOTS if set.

    Of the whole window with ``whole``, else of ``element`` (by default the
    report and the session).
    """
    if whole:
        png = driver.get_screenshot_as_png()
    else:
        found = driver.find_element(By.ID, element)
        driver.execute_script("arguments[0].scrollIntoView(true)", found)
        png = found.screenshot_as_png
    assert png.startswith(b"\x89PNG")
    (tmp_path / f"{name}.png").write_bytes(png)
    folder = os.environ.get("WSGISESSION_SCREENSHOTS")
    if folder:
        Path(folder, f"{name}.png").write_bytes(png)


def test_first_visit_then_reload(
    chromium: WebDriver, memory_demo: DemoProcess, tmp_path: Path
) -> None:
    chromium.get(memory_demo.url)
    assert text(chromium, "status").startswith("Before this page load: no session yet")
    assert text(chromium, "visits") == "1"
    chromium.refresh()
    assert text(chromium, "visits") == "2"
    assert "the store found the session" in text(chromium, "status")
    sent = cookie(chromium, "sessionid")
    assert sent is not None
    assert sent["httpOnly"] is True and sent["sameSite"] == "Lax"
    assert abs(sent["expiry"] - time.time() - TWO_WEEKS) < 60
    assert "sessionid" not in chromium.execute_script("return document.cookie")
    assert sent["value"] not in chromium.page_source  # the page shows a hash only
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: in (14 days|13 days 23 h) unless the session changes",
        text(chromium, "expiry"),
    )
    assert (
        "Sessions live in this process's memory (MemoryStore)" in chromium.page_source
    )
    screenshot(chromium, "demo-1-first-visit", tmp_path, whole=True)


def test_expiry_steps(
    chromium: WebDriver, memory_demo: DemoProcess, tmp_path: Path
) -> None:
    chromium.get(memory_demo.url)
    report = click(chromium, "expire-60")
    assert "set_expiry(60)" in report and "Max-Age=60;" in report
    sent = cookie(chromium, "sessionid")
    assert sent is not None and 50 < sent["expiry"] - time.time() <= 61
    first = text(chromium, "countdown")
    time.sleep(2.2)
    later = text(chromium, "countdown")
    assert (
        re.fullmatch(r"in (1 min|\d\d s)", first) and later != first
    )  # it counts down
    screenshot(chromium, "demo-2-expiry", tmp_path)
    report = click(chromium, "browser-close")
    assert "set_expiry(0)" in report
    sent = cookie(chromium, "sessionid")
    assert sent is not None and "expiry" not in sent  # a browser-session cookie
    assert text(chromium, "expiry").startswith("when the browser closes")
    report = click(chromium, "default-expiry")
    assert "Max-Age=1209600" in report


def test_cycle_key(
    chromium: WebDriver, memory_demo: DemoProcess, tmp_path: Path
) -> None:
    chromium.get(memory_demo.url)
    before = cookie(chromium, "sessionid")
    fingerprint = text(chromium, "fingerprint")
    report = click(chromium, "cycle")
    assert report.startswith(
        "Cycle the key (log in): cycle_key(): a new key for the same data"
    )
    after = cookie(chromium, "sessionid")
    assert (
        before is not None and after is not None and after["value"] != before["value"]
    )
    assert text(chromium, "fingerprint") != fingerprint
    assert text(chromium, "visits") == "2"  # the data moved to the new key
    screenshot(chromium, "demo-3-cycle-key", tmp_path)


def test_flush(chromium: WebDriver, memory_demo: DemoProcess, tmp_path: Path) -> None:
    chromium.get(memory_demo.url)
    chromium.refresh()
    before = cookie(chromium, "sessionid")
    report = click(chromium, "flush")
    assert report.startswith(
        "Flush (log out): flush(): the data cleared, its record deleted"
    )
    assert (
        'Set-Cookie: sessionid=""; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0'
        in report
    )
    assert text(chromium, "visits") == "1"  # a new session began with this page
    after = cookie(chromium, "sessionid")
    assert (
        before is not None and after is not None and after["value"] != before["value"]
    )
    screenshot(chromium, "demo-4-flush", tmp_path)


def test_no_lost_updates(
    chromium: WebDriver, memory_demo: DemoProcess, tmp_path: Path
) -> None:
    chromium.get(memory_demo.url)
    report = click(chromium, "race")
    assert "20 of 20 survived, merged by the store" in report
    match = re.search(r"scratch copy kept (\d+) of 20: (\d+) lost", report)
    assert match and int(match.group(2)) >= 1
    assert "race-*: 20 of the 20 keys of run" in text(chromium, "data")
    screenshot(chromium, "demo-5-no-lost-updates", tmp_path)


def test_cookie_store_size_limit(
    chromium: WebDriver, cookie_demo: DemoProcess, tmp_path: Path
) -> None:
    assert any("secret key: kept in" in line for line in cookie_demo.lines)
    chromium.get(cookie_demo.url)
    assert text(chromium, "users-unavailable").startswith(
        "Not available on the cookie store: the whole session lives in your browser"
    )
    for _ in range(3):
        assert "the cookie grew" in click(chromium, "add-kb")
    report = click(chromium, "add-kb")
    assert report.startswith("Add 1 KB: SessionCookieTooLarge: session cookie would be")
    assert "your browser keeps its previous cookie" in report
    assert "3 KB of random text" in text(chromium, "data")
    sent = cookie(chromium, "sessionid")
    assert sent is not None and len(sent["value"]) < 4093
    screenshot(chromium, "demo-6-size-limit", tmp_path)
    report = click(chromium, "race")
    assert "1 of 20 survived. The cookie store cannot merge" in report


def test_cookie_store_survives_a_restart(chromium: WebDriver, tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    demo = DemoProcess("--store", "cookie", env=env)
    try:
        chromium.get(demo.url)
        chromium.refresh()
        assert text(chromium, "visits") == "2"
    finally:
        demo.stop()
    demo = DemoProcess("--store", "cookie", env=env)
    try:
        chromium.get(demo.url)  # a new port, so the cookie goes by host: 127.0.0.1
        assert text(chromium, "visits") == "3"  # the same key: nobody logged out
    finally:
        demo.stop()


def log_in(driver: WebDriver, url: str, name: str) -> str:
    """Open the demo, type ``name`` and press Log in; the report."""
    driver.get(url)
    driver.find_element(By.ID, "user-name").send_keys(name)
    return click(driver, "log-in")


def listed(driver: WebDriver) -> list[tuple[str, str, bool]]:
    """The listed sessions: (handle, device, this browser)."""
    return [
        (
            str(entry.get_attribute("data-handle")),
            str(entry.find_element(By.CLASS_NAME, "device").text),
            bool(entry.find_elements(By.CLASS_NAME, "this-browser")),
        )
        for entry in driver.find_elements(By.CLASS_NAME, "user-session")
    ]


def test_two_browsers_one_user_revoke_the_other(
    chromium: WebDriver,
    second_chromium: WebDriver,
    memory_demo: DemoProcess,
    tmp_path: Path,
) -> None:
    laptop, phone = chromium, second_chromium
    assert log_in(phone, memory_demo.url, "alice").startswith(
        "Log in: bind_user('alice'): a new key"
    )
    assert text(phone, "user") == "alice"
    report = log_in(laptop, memory_demo.url, "alice")
    assert "Set-Cookie: sessionid=«key " in report
    laptop.refresh()
    sessions = listed(laptop)
    assert len(sessions) == 2 and text(laptop, "user-count") == "2"
    assert sorted(this for _, _, this in sessions) == [False, True]
    agent = laptop.execute_script("return navigator.userAgent")
    assert all(device == agent for _, device, _ in sessions)  # kept at login
    other = next(handle for handle, _, this in sessions if not this)
    assert laptop.find_element(By.ID, f"revoke-{other}").text == (
        "Sign out this other session"
    )
    screenshot(
        laptop, "demo-7-user-sessions", tmp_path, element="section-a-user-s-sessions"
    )

    report = click(laptop, f"revoke-{other}")
    assert report.startswith(
        f"Sign out this other session: revoke_user_session('alice', '{other[:8]}…'): "
        "its record deleted"
    )
    assert report.endswith("no Set-Cookie: nothing changed")
    assert [this for _, _, this in listed(laptop)] == [True]

    before = cookie(phone, "sessionid")
    phone.refresh()  # the revoked browser's next page load
    assert text(phone, "user-status") == "Not logged in in this browser."
    assert text(phone, "status").startswith("Before this page load: no session yet")
    assert text(phone, "visits") == "1"
    after = cookie(phone, "sessionid")
    assert before is not None and after is not None
    assert after["value"] != before["value"]  # its old key is gone for good
    report = click(laptop, "log-out")
    assert report.startswith("Log out: flush(): this session deleted")
    assert text(laptop, "user-status") == "Not logged in in this browser."
