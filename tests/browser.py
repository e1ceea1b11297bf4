"""Debian's headless Chromium, driven by selenium through /usr/bin/chromedriver.

Nothing is downloaded: the driver's path is given to selenium explicitly
(so Selenium Manager never runs), and Chromium runs with its background
networking, component updates and sync turned off, in a fresh profile
directory. Install both with ``apt-get install chromium chromium-driver``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "FLAGS",
    "MissingBrowser",
    "cookie",
    "start_chromium",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = (1000, 1400)  # wide enough for the demo's column, tall for screenshots


class MissingBrowser(RuntimeError):
    """Chromium or its driver is not installed."""


def start_chromium(profile: Path, extra_flags: tuple[str, ...] = ()) -> WebDriver:
    """A new headless Chromium with its own profile in ``profile`` (an empty
    directory); ``extra_flags`` go after :data:`FLAGS`."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise MissingBrowser(
                f"{binary} is not installed; the test command installs it: "
                f"apt-get install {package}"
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    return webdriver.Chrome(service=service, options=options)


def stop_chromium(driver: WebDriver, profile: Path) -> None:
    """Quit the browser (chromedriver ends its own child processes) and drop the profile."""
    try:
        driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def cookie(driver: WebDriver, name: str) -> dict[str, Any] | None:
    """The browser's cookie ``name`` for the current page (with its flags), or None."""
    found: dict[str, Any] | None = driver.get_cookie(name)
    return found


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yields its base URL."""
    from wsgisession.demo.serve import listen

    with served_forever(listen("127.0.0.1", 0, app)) as url:
        yield url


@contextmanager
def served_forever(server: Any) -> Iterator[str]:
    """Run a ``socketserver`` server's ``serve_forever`` in a thread; yields
    its base URL, and stops and closes it on the way out."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
