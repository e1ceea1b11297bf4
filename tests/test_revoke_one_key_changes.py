"""``revoke_user_session(user, handle)`` ends a session that changes keys
while it runs (the servers and files are real).

Revoking one session lists the user's index, finds the handle there, then
deletes that record. A ``cycle_key()`` of the session landing between the
two moved it to a new record: the delete found the old one gone, the call
answered False ("there was none") and the session lived on under a new
handle. Whoever holds a stolen session can make that happen at will, on
any page that calls ``cycle_key()``, while its owner clicks "sign out this
device". The revocation now follows the session to its new key by its
``created`` time, as ``revoke_user_sessions`` follows the ones it lists.

The hook runs the session's own request (load, ``cycle_key()``) right
after each of the revocation's index reads, in the revoking thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import build_store, store_argument, user_app

from wsgisession import SessionMiddleware
from wsgisession.session import Session
from wsgisession.stores.base import Record, Store

USER = "alice@example.org"
KINDS = [
    "memory",
    "file",
    "sqlite",
    "redis",
    "memcached",
    "memcached-pool",
    "redis-cluster",
    "sql-postgresql",
    "sql-mariadb",
]


@pytest.fixture(params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionMiddleware]:
    argument = store_argument(request.param, request, tmp_path)
    with SessionMiddleware(user_app, build_store(request.param, argument)) as built:
        yield built


def bound(site: SessionMiddleware, device: str) -> Session:
    session = site.open_session()
    session["device"] = device
    session.bind_user(USER)
    return session


def after_each_listing(
    monkeypatch: pytest.MonkeyPatch, store: Store, action: Callable[[], None]
) -> None:
    """Run ``action`` right after each read of a user's index by ``store``."""
    listing = store.user_session_records

    def listed_then_acted(user_id: str) -> dict[str, Record]:
        records = listing(user_id)
        action()
        return records

    monkeypatch.setattr(store, "user_session_records", listed_then_acted)


def key_changes(
    site: SessionMiddleware, keys: list[str], times: int
) -> Callable[[], None]:
    """The session of ``keys[-1]`` changes keys, at each call, ``times`` times."""

    def change() -> None:
        if len(keys) > times:
            return
        session = site.open_session(keys[-1])
        if session.user_id is None:  # revoked already
            return
        session.cycle_key()
        assert session.session_key is not None
        keys.append(session.session_key)

    return change


def alive(site: SessionMiddleware, keys: list[str]) -> list[str]:
    return [key for key in keys if site.store.load(key) is not None]


@pytest.mark.parametrize("times", [1, 3])
def test_a_session_changing_keys_during_its_revocation_is_revoked(
    site: SessionMiddleware, monkeypatch: pytest.MonkeyPatch, times: int
) -> None:
    stolen = bound(site, "attacker")
    owner = bound(site, "owner")
    assert stolen.session_key is not None and stolen.handle is not None
    keys = [stolen.session_key]
    after_each_listing(monkeypatch, site.store, key_changes(site, keys, times))
    assert site.revoke_user_session(USER, stolen.handle) is True
    monkeypatch.undo()
    assert len(keys) == times + 1  # it moved that often during the call
    assert alive(site, keys) == []
    assert [s.handle for s in site.user_sessions(USER)] == [owner.handle]


def test_a_session_logged_out_during_its_revocation_is_none(
    site: SessionMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaving = bound(site, "laptop")
    other = bound(site, "phone")  # created later: no match for the gone one
    assert leaving.handle is not None and leaving.session_key is not None

    def log_out() -> None:
        session = site.open_session(leaving.session_key)
        if session.user_id is not None:
            session.flush()

    after_each_listing(monkeypatch, site.store, log_out)
    assert site.revoke_user_session(USER, leaving.handle) is False
    monkeypatch.undo()
    assert [s.handle for s in site.user_sessions(USER)] == [other.handle]


def test_a_stale_handle_of_a_session_that_changed_keys_revokes_nothing(
    site: SessionMiddleware,
) -> None:
    moved = bound(site, "laptop")
    other = bound(site, "phone")
    old_handle = moved.handle
    assert old_handle is not None
    moved.cycle_key()
    assert site.revoke_user_session(USER, old_handle) is False
    assert {s.handle for s in site.user_sessions(USER)} == {
        moved.handle,
        other.handle,
    }
