"""A signed cookie store's key rotated in a rolling deploy (secrets.rst).

Processes of the old and the new configuration serve one user side by
side. Deployed in one round, a process with the old key alone refuses the
new processes' cookies (the session ends, its cookie is deleted); deployed
in the two rounds secrets.rst describes, the session lives through both.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import webtest

from wsgisession import SessionMiddleware
from wsgisession.stores import SignedCookieStore

OLD_KEY, NEW_KEY = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


def counter(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    session = environ["wsgisession"]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["n"]).encode()]


def process(key: str, fallbacks: tuple[str, ...] = (), **options: Any) -> Any:
    store = SignedCookieStore(key, list(fallbacks), **options)
    return SessionMiddleware(counter, store=store)


def counts(*processes: Any) -> list[int]:
    """The counts one browser sees visiting each process in turn."""
    browser = webtest.TestApp(processes[0])
    seen = []
    for app in processes:
        browser.app = app
        seen.append(int(browser.get("/").text))
    return seen


def test_one_round_ends_the_sessions_that_reach_an_old_process() -> None:
    old, new = process(OLD_KEY), process(NEW_KEY, (OLD_KEY,))
    assert counts(old, new, old, new) == [1, 2, 1, 2]


def test_two_rounds_keep_every_session() -> None:
    old = process(OLD_KEY)
    accepting = process(OLD_KEY, (NEW_KEY,))
    new = process(NEW_KEY, (OLD_KEY,))
    assert counts(old, accepting, old, accepting) == [1, 2, 3, 4]
    assert counts(accepting, new, accepting, new) == [1, 2, 3, 4]


def test_encryption_turned_on_in_one_process_ends_sessions_in_the_others() -> None:
    plain, sealed = process(OLD_KEY), process(OLD_KEY, encrypt=True)
    assert counts(plain, sealed, sealed, plain) == [1, 2, 3, 1]
