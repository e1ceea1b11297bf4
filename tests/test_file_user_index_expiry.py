"""A save that checked its record live just before it expired, and
writes the renewed record just after, races an index prune (a listing, a
login, a sweep) that saw the record expired in between: the session lives on,
renewed, while its user's index no longer listed it, so revocation missed
it. The prune now looks again under the shard's lock before it drops an
expired record."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import FakeClock

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore

USER = "alice"


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


def _another_login(middleware, store):
    other = middleware.open_session()
    other["agent"] = "phone"
    other.bind_user(USER)  # prunes the user's index first


PRUNES = {
    "listing": lambda middleware, store: middleware.user_sessions(USER),
    "login": _another_login,
    "clear_expired": lambda middleware, store: store.clear_expired(),
}


@pytest.mark.slow  # a save held in its merge for 0.6 s
@pytest.mark.parametrize("prune", list(PRUNES))
def test_a_save_across_its_expiry_stays_revocable(
    tmp_path, prune, frozen_clock: FakeClock
) -> None:
    """The store's clock stands still until the test moves it past the
    record's expiry: a loaded machine that took 0.3 s between two lines
    found the record already expired at the save's own load (a failed
    merge in the saver thread, and ``in_merge`` never set)."""
    store = FileStore(str(tmp_path / "s"))
    middleware = SessionMiddleware(app, store=store)
    session = middleware.open_session()
    session["agent"] = "laptop"
    session.bind_user(USER)
    key = session.session_key
    # The record expires in 0.3 s (as if the session had been idle until now).
    record = store.load(key)
    store.update(key, lambda current: (current, frozen_clock() + 0.3), record)

    in_merge = threading.Event()

    def slow_merge(current):
        # The save has found the record live; encoding a big session takes a
        # while (here: until the record's expiry has passed).
        assert current is not None
        in_merge.set()
        time.sleep(0.6)
        return current, frozen_clock() + 3600

    saver = threading.Thread(
        target=store.update, args=(key, slow_merge, store.load(key))
    )
    saver.start()
    assert in_merge.wait(5)
    frozen_clock.advance(0.4)  # the record's expiry has passed; the save still runs
    PRUNES[prune](middleware, store)  # prunes the index of dead sessions
    saver.join()

    assert store.load(key) is not None  # the save renewed the record
    # ... so the user's index must still list it, and revocation end it.
    assert middleware.revoke_user_sessions(USER) >= 1
    assert store.load(key) is None
