"""memcached: a revocation made while a user's index was evicted is final too.

With its index evicted, a bound session fails closed on its next load
(treated as revoked) and a revocation, which lists the index, cannot delete
its record. A request of that session already running must not bring it
back by changing its key: the new record would be indexed afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import build_store, evict_user_index, store_argument, user_app

from wsgisession import SessionInterrupted, SessionMiddleware
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore

USER = "alice@example.org"
PREFIX = "wsgisession:"


@pytest.fixture(params=["memcached", "memcached-pool"])
def middleware(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionMiddleware]:
    argument = store_argument(request.param, request, tmp_path)
    with SessionMiddleware(user_app, build_store(request.param, argument)) as mw:
        yield mw


def bound(middleware: SessionMiddleware, device: str) -> Session:
    session = middleware.open_session()
    session["device"] = device
    session.bind_user(USER)
    return session


@pytest.mark.parametrize("change", ["cycle_key", "bind_user"])
def test_a_key_change_in_flight_after_an_eviction_brings_nothing_back(
    middleware: SessionMiddleware, change: str
) -> None:
    store = middleware.store
    assert isinstance(store, MemcachedStore)
    stolen = bound(middleware, "attacker")
    in_flight = middleware.open_session(stolen.session_key)
    assert in_flight["device"] == "attacker"  # loaded while its index was there
    evict_user_index(store, USER)
    current = bound(middleware, "owner")  # the owner signs in again...
    middleware.revoke_user_sessions(USER, keep=current)  # ...and out elsewhere
    with pytest.raises(SessionInterrupted):
        if change == "cycle_key":
            in_flight.cycle_key()
        else:
            in_flight.bind_user(USER)
    assert in_flight.session_key is None and in_flight.user_id is None
    assert [s.data["device"] for s in middleware.user_sessions(USER)] == ["owner"]
