"""The memcached user index expires once no session it lists can live.

memcached has no way to list its keys, so no sweep reaches the index item
of a user who never comes back: without a TTL it stayed until evicted, one
item more per user ever logged in (a churn run: every one of them was
still there after their sessions had expired). The index now carries a
horizon past the expiry of every session it lists, raised by the logins
and the saves that move an expiry beyond it, and memcached drops the item
at that horizon. Real memcached, real seconds: its clock cannot be moved.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers import get
from pymemcache.client.base import Client

from wsgisession import SessionMiddleware
from wsgisession.stores import MemcachedStore

pytestmark = pytest.mark.slow


def login_app(environ, start_response):
    """``?login=U`` binds the session to U, ``?long`` sets a 30 s expiry,
    anything else writes a counter (a save)."""
    session = environ["wsgisession"]
    query = environ["QUERY_STRING"]
    session["n"] = session.get("n", 0) + 1
    if query.startswith("login="):
        session.bind_user(query[len("login=") :])
    elif query == "long":
        session.set_expiry(30)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.user_id).encode()]


@pytest.fixture
def middleware(clean_memcached) -> Iterator[SessionMiddleware]:
    store = MemcachedStore(clean_memcached.address)
    with SessionMiddleware(login_app, store=store, cookie_age=1) as made:
        yield made


@pytest.fixture
def raw(clean_memcached) -> Iterator[Client]:
    host, port = clean_memcached.address.rsplit(":", 1)
    client = Client((host, int(port)))
    yield client
    client.close()


def cookie_of(headers: list[tuple[str, str]], cookie: str | None) -> str | None:
    """The session cookie a response set, else the one the request sent."""
    for name, value in headers:
        if name == "Set-Cookie":
            return value.split(";", 1)[0]
    return cookie


def visit(middleware: SessionMiddleware, query: str, cookie: str | None) -> str | None:
    """One request; the cookie to send next."""
    status, headers = get(middleware, query, cookie)
    assert status.startswith("200")
    return cookie_of(headers, cookie)


def index_key(middleware: SessionMiddleware, user: str) -> str:
    store = middleware.store
    assert isinstance(store, MemcachedStore)
    return store._users.key(user)


def test_the_index_of_a_user_who_never_comes_back_expires(
    middleware: SessionMiddleware, raw: Client
) -> None:
    users = [f"gone{number}" for number in range(20)]
    for user in users:
        visit(middleware, f"login={user}", None)
    keys = [index_key(middleware, user) for user in users]
    assert len(raw.get_many(keys)) == len(users)
    # Sessions of 1 s; the horizon is twice their lifetime, plus memcached's
    # margin of 2 s and its whole-second clock.
    time.sleep(6)
    assert raw.get_many(keys) == {}


def test_saves_keep_the_index_of_a_session_in_use(
    middleware: SessionMiddleware,
) -> None:
    cookie = visit(middleware, "login=busy", None)
    deadline = time.monotonic() + 8  # well past the login's horizon
    while time.monotonic() < deadline:
        cookie = visit(middleware, "save", cookie)
        time.sleep(0.4)
    status, headers = get(middleware, "save", cookie)
    assert status.startswith("200")
    assert cookie_of(headers, cookie) == cookie  # the same session, still live
    assert len(middleware.user_sessions("busy")) == 1


def test_saves_of_a_short_session_do_not_cut_a_long_one_short(
    middleware: SessionMiddleware,
) -> None:
    long_lived = visit(middleware, "login=both", None)
    long_lived = visit(middleware, "long", long_lived)  # 30 s
    short = visit(middleware, "login=both", None)  # 1 s, saved on and on
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        short = visit(middleware, "save", short)
        time.sleep(0.4)
    session = middleware.open_session(long_lived.split("=", 1)[1])  # type: ignore[union-attr]
    assert session.user_id == "both"
    assert len(middleware.user_sessions("both")) == 2


def test_saves_within_half_a_lifetime_leave_the_index_alone(
    clean_memcached, raw: Client
) -> None:
    """The request's load read the index and its horizon: a save that
    stays within it writes the record alone (one ``cas`` each)."""
    store = MemcachedStore(clean_memcached.address)
    with SessionMiddleware(login_app, store=store, cookie_age=60) as middleware:
        cookie = visit(middleware, "login=steady", None)
        before = raw.stats()[b"cas_hits"]
        for _ in range(10):
            cookie = visit(middleware, "save", cookie)
        assert raw.stats()[b"cas_hits"] - before == 10


def test_an_index_without_a_horizon_keeps_no_ttl(
    middleware: SessionMiddleware, raw: Client
) -> None:
    """An index an earlier version wrote (no ``h`` line, no TTL) is never
    given one by a save: the sessions it lists would be cut short."""
    cookie = visit(middleware, "login=old", None)
    key = index_key(middleware, "old")
    value = raw.get(key)
    legacy = b"\n".join(
        line for line in value.split(b"\n") if not line.startswith(b"h ")
    )
    assert legacy != value
    raw.set(key, legacy, expire=0)
    deadline = time.monotonic() + 6  # past the horizon the login wrote
    while time.monotonic() < deadline:
        cookie = visit(middleware, "save", cookie)
        time.sleep(0.4)
    assert raw.get(key) == legacy
    assert len(middleware.user_sessions("old")) == 1
