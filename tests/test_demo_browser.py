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
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import cookie
from demo_process import DemoProcess
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
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


def text(driver: WebDriver, element: str) -> str:
    return str(driver.find_element(By.ID, element).text)


def click(driver: WebDriver, action: str) -> str:
    """Click the button of ``action``; the report the next page shows."""
    old = driver.find_element(By.ID, "report")
    driver.find_element(By.ID, action).click()
    WebDriverWait(driver, 10).until(staleness_of(old))  # the next page replaced it
    return text(driver, "report")


def screenshot(
    driver: WebDriver, name: str, tmp_path: Path, *, whole: bool = False
) -> None:
    """Keep a screenshot: in the test's folder, and in $WSGISESSION_SCREENSHOTS if set.

    Of the whole window with ``whole``, else of the report and the session.
    """
    if whole:
        png = driver.get_screenshot_as_png()
    else:
        png = driver.find_element(By.ID, "now").screenshot_as_png
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
