"""``cleanup_interval`` with saves that overlap in threads.

A save reads the time before it writes; a slow write (a busy store, a
contended file) finishes after saves that began later. The sweep due
check must not take such a save for a clock set back and sweep again
within the interval.
"""

from __future__ import annotations

import threading

from helpers import FakeClock, call, increment_app

from wsgisession import SessionMiddleware
from wsgisession.keys import storage_key
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Merge, Record


class SlowUpdateStore(MemoryStore):
    """A memory store that counts its sweeps, and whose update of one record
    waits (as a busy store would) until the test lets it go on."""

    def __init__(self) -> None:
        super().__init__()
        self.sweeps: list[int] = []
        self.slow: str | None = None  # the storage key whose update waits
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        if storage_key(session_key) == self.slow:
            self.writing.set()
            assert self.go_on.wait(10)
        return super().update(session_key, merge, loaded)

    def sweep_expired(self, limit: int) -> int:
        self.sweeps.append(limit)
        return super().sweep_expired(limit)


def test_a_save_that_began_before_a_sweep_does_not_sweep_again(
    frozen_clock: FakeClock,
) -> None:
    store = SlowUpdateStore()
    app = SessionMiddleware(increment_app, store, cleanup_interval=300)
    headers = call(app, "counter", None)  # a new session, the first sweep
    cookie = dict(headers)["Set-Cookie"].split(";")[0]
    assert store.sweeps == [100]
    store.slow = storage_key(cookie.partition("=")[2])
    frozen_clock.advance(300)  # a sweep is due
    slow = threading.Thread(target=call, args=(app, "counter", cookie))
    slow.start()  # its save reads the time, then waits on the store
    try:
        assert store.writing.wait(10)
        frozen_clock.advance(1)
        call(app, "counter", None)  # another request's save: it sweeps
        assert store.sweeps == [100, 100]
    finally:
        store.go_on.set()
        slow.join(10)
    assert store.sweeps == [100, 100], "swept twice within one interval"
