"""Cookie tossing: a planted cookie of the same name must not replace or end the real session.

A sibling subdomain can set ``sessionid`` for the parent domain on a longer
path; browsers then send it first: ``Cookie: sessionid=<planted>;
sessionid=<real>``. The session is the first value the store knows (the
cookie store: the first that verifies); the others are ignored and never
cause a deleting cookie while another loaded. At most a few are tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import STORE_FACTORIES, build_store, call, increment_app, store_argument

from wsgisession import SessionMiddleware
from wsgisession.keys import generate_key
from wsgisession.offered_keys import MAX_KEY_CANDIDATES
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Record, Store

SECRET = "tossing-test-secret-0123456789abcdef"
KINDS = [*STORE_FACTORIES, "cookie"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "cookie":
        return SignedCookieStore(SECRET)
    return build_store(request.param, store_argument(request.param, request, tmp_path))


def read_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Only reads the session (a page that shows who is logged in)."""
    user = environ["wsgisession"].get("user")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(user).encode()]


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name == "Set-Cookie"]


def logged_in(app: SessionMiddleware) -> str:
    """A real session holding ``user`` and ``counter``; its cookie value."""
    session = app.open_session()
    session.update(user="victim", counter=1)
    session.save()
    key = session.session_key
    assert key is not None
    return key


def planted_for(store: Store) -> list[str]:
    """Values an attacker plants: well-formed ids the store does not know."""
    if store.client_side:
        signed_elsewhere = SignedCookieStore("attacker-own-secret-0123456789abcdef")
        forged = signed_elsewhere.create("", b'{"v": 1}', 4e9)
        return ["x", forged]
    return [generate_key(), generate_key()]


def test_planted_cookie_first_does_not_log_the_victim_out(store: Store) -> None:
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    for planted in planted_for(store):
        headers = call(app, "", f"sessionid={planted}; sessionid={real}")
        assert set_cookies(headers) == [], "no deleting cookie while the real one loads"
        assert ("Vary", "Cookie") in headers
    assert app.open_session(real)["user"] == "victim"


def test_planted_cookie_first_does_not_replace_the_session_on_write(
    store: Store,
) -> None:
    app = SessionMiddleware(increment_app, store=store)
    real = logged_in(app)
    for planted in planted_for(store):
        headers = call(app, "counter", f"sessionid={planted}; sessionid={real}")
        (cookie,) = set_cookies(headers)
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        if not store.client_side:
            assert value == real, "the real session is kept, not a fresh one"
        real = value
    session = app.open_session(real)
    assert session["user"] == "victim"
    assert session["counter"] == 3, "both writes went to the real session"


def test_real_cookie_first_still_wins(store: Store) -> None:
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    planted = planted_for(store)[-1]
    headers = call(app, "", f"sessionid={real}; sessionid={planted}")
    assert set_cookies(headers) == []


def test_only_unknown_cookies_are_deleted_as_before(store: Store) -> None:
    app = SessionMiddleware(read_app, store=store)
    planted = planted_for(store)
    headers = call(app, "", "; ".join(f"sessionid={value}" for value in planted))
    (cookie,) = set_cookies(headers)
    assert "Max-Age=0" in cookie


def test_session_key_is_the_one_that_loaded(store: Store) -> None:
    seen: list[str | None] = []

    def key_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgisession"].session_key)
        start_response("200 OK", [])
        return [b""]

    app = SessionMiddleware(key_app, store=store)
    real = logged_in(app)
    call(app, "", f"sessionid={planted_for(store)[-1]}; sessionid={real}")
    assert seen == [real]


class CountingStore(MemoryStore):
    """A memory store that counts the loads it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self, session_key: str) -> Record | None:
        self.loads += 1
        return super().load(session_key)


def test_thousands_of_values_cost_a_few_loads() -> None:
    store = CountingStore()
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    store.loads = 0
    flood = "; ".join(f"sessionid={generate_key()}" for _ in range(2000))
    call(app, "", f"{flood}; sessionid={real}")
    assert store.loads == MAX_KEY_CANDIDATES == 4


def test_values_left_untried_never_delete_the_cookie() -> None:
    store = CountingStore()
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    planted = [generate_key() for _ in range(MAX_KEY_CANDIDATES)]
    store.loads = 0
    headers = call(app, "", "; ".join(f"sessionid={v}" for v in [*planted, real]))
    assert store.loads == MAX_KEY_CANDIDATES, "the real value is past the cap"
    assert set_cookies(headers) == [], "it may be the real session: no deletion"
    assert app.open_session(real)["user"] == "victim"


def test_a_logout_deletes_the_cookie_whatever_else_the_header_holds(
    store: Store,
) -> None:
    """The real value loaded: the values left untried do not stop a logout."""

    def logout_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgisession"].flush()
        start_response("200 OK", [])
        return [b"bye"]

    real = logged_in(SessionMiddleware(read_app, store=store))
    planted = [generate_key() for _ in range(MAX_KEY_CANDIDATES)]
    app = SessionMiddleware(logout_app, store=store)
    headers = call(app, "", "; ".join(f"sessionid={v}" for v in [real, *planted]))
    (cookie,) = set_cookies(headers)
    assert "Max-Age=0" in cookie


def test_as_many_unknown_values_as_the_cap_are_deleted() -> None:
    app = SessionMiddleware(read_app, store=MemoryStore())
    planted = [generate_key() for _ in range(MAX_KEY_CANDIDATES)]
    repeated = [*planted, planted[0]]  # a repeat is not an untried value
    headers = call(app, "", "; ".join(f"sessionid={v}" for v in repeated))
    (cookie,) = set_cookies(headers)
    assert "Max-Age=0" in cookie


def test_one_cookie_costs_one_load() -> None:
    store = CountingStore()
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    store.loads = 0
    call(app, "", f"sessionid={real}")
    assert store.loads == 1


def test_repeated_values_are_tried_once() -> None:
    store = CountingStore()
    app = SessionMiddleware(read_app, store=store)
    real = logged_in(app)
    planted = generate_key()
    store.loads = 0
    call(app, "", "; ".join([f"sessionid={planted}"] * 10 + [f"sessionid={real}"]))
    assert store.loads == 2
