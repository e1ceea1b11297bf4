"""Another request acting while a save is inside its store's update: after
the merge made the payload to write, before the store writes it.

The stores that compare and set (SQLite's conditional UPDATE, the SQL
store's, Redis's script, memcached's ``cas``) read the record, merge, then
write only if the record is still what they read. Each case runs another
request's flush, expiry, save, key change or revocation at that very
moment (the store's own update wraps the merge; the real store runs), and
checks the promise: a deleted, expired or moved session is not brought
back, and changes to other keys are kept. The memory and file stores hold
a lock over the whole update, so nothing can come in between there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from helpers import saved_session, store_fixture

from wsgisession import Session, SessionInterrupted, SessionMiddleware
from wsgisession.stores.base import Merge, Record, Store

KINDS = [
    "sqlite",
    "redis",
    "memcached",
    "sql-postgresql",
    "sql-mariadb",
    "redis-cluster",
    "memcached-pool",
]


store = store_fixture(KINDS)


def run_to_its_end(action: Callable[[], object]) -> None:
    """``action()`` in another thread (another request), to its end."""
    errors: list[Exception] = []

    def request() -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - raised below
            errors.append(exc)

    thread = threading.Thread(target=request)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the other request waited for the save"
    if errors:
        raise errors[0]


def race_inside_next_update(store: Store, action: Callable[[], object]) -> None:
    """The store's next update runs ``action`` (another request) once its
    first merge has made the payload, before the store writes it."""
    base = type(store)

    def update(
        self: Store, session_key: str, merge: Merge, loaded: Record | None
    ) -> str:
        self.__class__ = base  # the next update only
        merged_once = False

        def merge_then_race(current: bytes | None) -> tuple[bytes, float]:
            nonlocal merged_once
            result = merge(current)
            if not merged_once:
                merged_once = True
                run_to_its_end(action)
            return result

        return base.update(self, session_key, merge_then_race, loaded)

    store.__class__ = type(f"Racing{base.__name__}", (base,), {"update": update})


def test_a_logout_inside_a_save_is_not_undone(store: Store) -> None:
    key = saved_session(store, a=1)
    saver = Session(store, session_key=key)
    saver["b"] = 2
    race_inside_next_update(store, Session(store, session_key=key).flush)
    with pytest.raises(SessionInterrupted):
        saver.save()
    assert store.load(key) is None


def test_an_expiry_in_the_past_inside_a_save_is_not_undone(store: Store) -> None:
    key = saved_session(store, a=1)
    expiring = Session(store, session_key=key)
    expiring.set_expiry(-10)
    saver = Session(store, session_key=key)
    saver["b"] = 2
    race_inside_next_update(store, expiring.save)
    with pytest.raises(SessionInterrupted):
        saver.save()
    assert store.load(key) is None


def test_other_keys_saved_inside_a_save_are_kept(store: Store) -> None:
    key = saved_session(store, a=1, c=3)
    saver = Session(store, session_key=key)
    saver["b"] = 2
    saver["a"] = 7

    def other_request() -> None:
        other = Session(store, session_key=key)
        other["x"] = 9
        del other["c"]
        other["a"] = 5  # saved first: the saver's later save wins for "a"
        other.save()

    race_inside_next_update(store, other_request)
    saver.save()
    assert dict(Session(store, session_key=key)) == {"a": 7, "b": 2, "x": 9}
    assert dict(saver) == {"a": 7, "b": 2, "x": 9}


def test_values_changed_in_place_by_both_are_both_kept(store: Store) -> None:
    key = saved_session(store, cart=[1], tags={"k": [1]})
    saver = Session(store, session_key=key)
    saver["cart"].append(2)
    tags = saver["tags"]  # received, left alone

    def other_request() -> None:
        other = Session(store, session_key=key)
        other["tags"]["k"].append(2)
        other.save()

    race_inside_next_update(store, other_request)
    saver.save()
    expected = {"cart": [1, 2], "tags": {"k": [1, 2]}}
    assert dict(Session(store, session_key=key)) == expected
    assert dict(saver) == expected and tags == {"k": [1]}


def test_a_key_change_inside_a_save_is_not_undone(store: Store) -> None:
    key = saved_session(store, a=1)
    saver = Session(store, session_key=key)
    saver["b"] = 2
    mover = Session(store, session_key=key)
    mover["m"] = 1
    race_inside_next_update(store, mover.cycle_key)
    with pytest.raises(SessionInterrupted):
        saver.save()
    assert store.load(key) is None
    assert mover.session_key not in (None, key)
    assert dict(Session(store, session_key=mover.session_key)) == {"a": 1, "m": 1}


def test_a_revocation_inside_a_save_is_not_undone(store: Store) -> None:
    login = Session(store, session_key=saved_session(store, a=1))
    login.bind_user("alice")
    key = login.session_key
    assert key is not None
    saver = Session(store, session_key=key)
    saver["b"] = 2
    middleware = SessionMiddleware(lambda environ, start: [], store)
    race_inside_next_update(store, lambda: middleware.revoke_user_sessions("alice"))
    with pytest.raises(SessionInterrupted):
        saver.save()
    assert store.load(key) is None
    assert middleware.user_sessions("alice") == []
