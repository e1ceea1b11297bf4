"""A memcached pool whose server list changes between deploys.

Sessions live where rendezvous hashing of their keys puts them, and so do
the users' indexes: a new list moves a share of each (stores.rst says
which), and a record left behind on a server that no longer holds its key
comes back when an older list returns (a rollback, or an old process of a
rolling deploy still running). "Sign out everywhere" in a process of the
new list must still end the sessions bound under the old one: their
user's index may have moved, so the copy left on its old server must not
list them any more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from servers import MemcachedPool

from wsgisession import SessionMiddleware
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore

pytestmark = pytest.mark.slow

SESSIONS = 12


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]


def middleware(servers: list[str]) -> SessionMiddleware:
    return SessionMiddleware(app, store=MemcachedStore(servers))


def index_server(middleware: SessionMiddleware, user: str) -> str:
    store = middleware.store
    assert isinstance(store, MemcachedStore)
    return store._server_for(store._users.key(user)).spec


def record_server(middleware: SessionMiddleware, session: Session) -> str:
    store = middleware.store
    assert isinstance(store, MemcachedStore)
    return store._server_for(store._name(session.session_key or "")).spec


def user_whose_index_moves(old: SessionMiddleware, new: SessionMiddleware) -> str:
    """A user whose index lives on another server under the new list."""
    for number in range(1000):
        user = f"user-{number}"
        if index_server(old, user) != index_server(new, user):
            return user
    raise AssertionError("no user's index moves")  # pragma: no cover


def sign_in(middleware: SessionMiddleware, user: str, device: int) -> Session:
    session = middleware.open_session()
    session["device"] = device
    session.bind_user(user)
    return session


def loads(middleware: SessionMiddleware, session: Session) -> bool:
    return "device" in middleware.open_session(session.session_key)


def test_sign_out_everywhere_reaches_the_sessions_of_the_old_list(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    """Signed out everywhere in a process of the new list, no session of the
    user loads in a process still running the old list, nor after a rollback."""
    first, second, added = fresh_memcached_pool.addresses
    old, new = middleware([first, second]), middleware([first, second, added])
    user = user_whose_index_moves(old, new)
    before = [sign_in(old, user, device) for device in range(SESSIONS)]
    after = sign_in(new, user, SESSIONS)

    new.revoke_user_sessions(user)

    assert not loads(new, after)
    assert [device for device, s in enumerate(before) if loads(old, s)] == []
    assert [device for device, s in enumerate(before) if loads(new, s)] == []


def test_sign_out_of_other_devices_keeps_the_current_session(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    first, second, added = fresh_memcached_pool.addresses
    old, new = middleware([first, second]), middleware([first, second, added])
    user = user_whose_index_moves(old, new)
    before = sign_in(old, user, 0)
    current = sign_in(new, user, 1)

    new.revoke_user_sessions(user, keep=current)

    assert loads(new, current)
    assert not loads(old, before)


def test_the_order_of_the_servers_does_not_matter(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    servers = fresh_memcached_pool.addresses
    old = middleware(servers)
    sessions = [sign_in(old, f"user-{device}", device) for device in range(SESSIONS)]

    reordered = middleware(servers[::-1])

    assert all(loads(reordered, session) for session in sessions)
    assert all(len(reordered.user_sessions(f"user-{n}")) == 1 for n in range(SESSIONS))


def test_an_added_server_ends_the_sessions_it_takes_or_whose_index_it_takes(
    fresh_memcached_pool: MemcachedPool,
) -> None:
    """stores.rst: a bound session ends if its record moves to the added
    server, or its user's index does (fail closed: unlisted is revoked)."""
    first, second, added = fresh_memcached_pool.addresses
    old, new = middleware([first, second]), middleware([first, second, added])
    users = [f"user-{n}" for n in range(3 * SESSIONS)]
    sessions = [sign_in(old, user, n) for n, user in enumerate(users)]

    for user, session in zip(users, sessions, strict=True):
        moved = added in (record_server(new, session), index_server(new, user))
        assert loads(new, session) is not moved
