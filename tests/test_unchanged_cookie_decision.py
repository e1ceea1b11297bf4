"""The response's cookie for a session left as the app found it agrees with the policy.

``Response.cookie_headers`` settles an unchanged session without asking
:func:`~wsgisession.cookies.decide_for` (``ResponseSetup.saves_unchanged``
says when it must ask): for every combination of the session's state, the
settings and the status, what the middleware sends is what the policy says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import get

from wsgisession import SessionMiddleware
from wsgisession.config import Settings
from wsgisession.cookies import DELETE, NOTHING, SET, CookieAction, decide_for
from wsgisession.keys import generate_key
from wsgisession.session import Session
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Store

SECRET = "unchanged-decision-secret-0123456789abcdef"

Step = Callable[[Session], None]


def read(session: Session) -> None:
    session.get("user")


def write_then_unmark(session: Session) -> None:
    session["user"] = "changed"
    session.modified = False


def save_by_app(session: Session) -> None:
    session["user"] = "saved"
    session.save()
    session.modified = False


def save_unchanged(session: Session) -> None:
    session.get("user")
    session.save()


def write(session: Session) -> None:
    session["user"] = "written"


def clear(session: Session) -> None:
    session.clear()


def read_then_unaccess(session: Session) -> None:
    session.get("user")
    session.accessed = False


# (name, step, stored session offered, stale cookie offered, app modified,
#  options, status)
CASES: list[tuple[str, Step, bool, bool, bool, dict[str, Any], str]] = []
for options in ({}, {"save_on_error": True}, {"save_every_request": True}):
    for status in ("200 OK", "500 Internal Server Error"):
        CASES += [
            ("empty, no cookie", read, False, False, False, options, status),
            ("empty, stale cookie", read, False, True, False, options, status),
            ("stored, read", read, True, False, False, options, status),
            (
                "stored, unmarked",
                write_then_unmark,
                True,
                False,
                False,
                options,
                status,
            ),
            ("stored, saved by app", save_by_app, True, False, True, options, status),
            ("stored, save() only", save_unchanged, True, False, True, options, status),
            ("stored, written", write, True, False, True, options, status),
            ("stored, cleared", clear, True, False, True, options, status),
            ("new, written", write, False, False, True, options, status),
            ("empty, written", write_then_unmark, False, True, False, options, status),
        ]


def _store(kind: str) -> Store:
    return SignedCookieStore(SECRET) if kind == "cookie" else MemoryStore()


def _expected(
    settings: Settings, modified: bool, empty: bool, had_cookie: bool, status: str
) -> CookieAction:
    return decide_for(True, modified, empty, had_cookie, False, settings, status)


@pytest.mark.parametrize("kind", ["memory", "cookie"])
@pytest.mark.parametrize(
    ("name", "step", "stored", "stale", "modified", "options", "status"),
    CASES,
    ids=[f"{c[0]}-{c[5]}-{c[6][:3]}" for c in CASES],
)
def test_the_cookie_sent_is_the_policys(
    kind: str,
    name: str,
    step: Step,
    stored: bool,
    stale: bool,
    modified: bool,
    options: dict[str, Any],
    status: str,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        step(environ["wsgisession"])
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, _store(kind), **options)
    cookie = None
    if stored:
        session = middleware.open_session()
        session["user"] = "someone"
        session.save()
        cookie = f"sessionid={session.session_key}"
    elif stale:  # a well-formed id the store does not know
        if kind == "cookie":
            elsewhere = SignedCookieStore("another-secret-0123456789abcdef0123")
            cookie = f"sessionid={elsewhere.create('', b'{}', 4e9)}"
        else:
            cookie = f"sessionid={generate_key()}"
    empty = name in ("empty, no cookie", "empty, stale cookie")  # no key, no data
    wanted = _expected(middleware.settings, modified, empty, cookie is not None, status)
    _, headers = get(middleware, "", cookie)
    sent = [value for header, value in headers if header == "Set-Cookie"]
    if wanted is NOTHING:
        assert sent == []
    elif wanted is DELETE:
        assert len(sent) == 1 and sent[0].startswith("sessionid=;")
    else:
        assert wanted is SET
        assert len(sent) == 1 and not sent[0].startswith("sessionid=;")


@pytest.mark.parametrize("kind", ["memory", "cookie"])
def test_a_session_read_then_unaccessed_sends_nothing(kind: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        read_then_unaccess(environ["wsgisession"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, _store(kind))
    _, headers = get(middleware, "", "sessionid=unknown-key-0123456789abcdef")
    assert [h for h in headers if h[0] == "Set-Cookie"] == []
