"""``cycle_key()`` and ``bind_user()`` racing another request of the session.

A key change reads and deletes the old record in one atomic update of its
store: a save another request made to it after this one loaded it moves to
the new key with the rest (it was lost with the old key), and a record
deleted meanwhile (a logout in another tab) is not brought back under the
new key. Each interleaving is played step by step, on every server-side
store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import USER_SESSION_STORES, build_store, saved_session, store_argument

from wsgisession import Session, SessionInterrupted
from wsgisession.clock import now
from wsgisession.stores.base import Store

USER = "alice"
MOVES: dict[str, Callable[[Session], None]] = {
    "cycle_key": lambda session: session.cycle_key(),
    "bind_user": lambda session: session.bind_user(USER),
}


class Backing:
    """A store, and what its backing holds, seen from outside."""

    def __init__(self, kind: str, argument: str) -> None:
        self.kind, self.argument = kind, argument
        self.store: Store = build_store(kind, argument)

    def dump(self) -> bytes:
        return USER_SESSION_STORES[self.kind](self.store, self.argument)


@pytest.fixture(params=list(USER_SESSION_STORES))
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backing]:
    kind: str = request.param
    backing = Backing(kind, store_argument(kind, request, tmp_path))
    yield backing
    backing.store.close()


@pytest.mark.parametrize("move", MOVES)
def test_a_save_made_while_the_key_changes_moves_with_it(
    backing: Backing, move: str
) -> None:
    store = backing.store
    key = saved_session(store, a=0, cart=[1])
    mover = Session(store, session_key=key)
    mover["cart"].append(2)  # a change in place of its own
    other = Session(store, session_key=key)  # another tab, saved first
    other["b"] = 1
    other.set_expiry(3600)
    other.save()
    MOVES[move](mover)
    new = mover.session_key
    assert new not in (None, key)
    assert store.load(key) is None
    expected = {"a": 0, "cart": [1, 2], "b": 1}
    assert dict(Session(store, session_key=new)) == expected
    assert dict(mover) == expected
    record = store.load(new)  # type: ignore[arg-type]
    assert record is not None
    assert record.expires_at == pytest.approx(now() + 3600, abs=30)
    mover["cart"].append(3)  # still watched after the move
    mover.save()
    assert Session(store, session_key=new)["cart"] == [1, 2, 3]
    other["c"] = 2  # the old key's next save must not bring it back
    with pytest.raises(SessionInterrupted):
        other.save()
    assert store.load(key) is None


@pytest.mark.parametrize("move", MOVES)
def test_a_key_change_after_a_logout_elsewhere_brings_nothing_back(
    backing: Backing, move: str
) -> None:
    store = backing.store
    key = saved_session(store, secret="before-the-logout")
    mover = Session(store, session_key=key)
    mover.load()
    Session(store, session_key=key).flush()  # a logout in another tab
    with pytest.raises(SessionInterrupted):
        MOVES[move](mover)
    assert mover.session_key is None and dict(mover) == {}
    assert b"before-the-logout" not in backing.dump()
    assert store.user_session_records(USER) == {}
