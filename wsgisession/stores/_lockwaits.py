"""Waiting for a held request lock: one poller per lock and process, backing off.

Each try at a held lock is a store command (an SQLite write transaction,
a Redis ``SET NX``, a memcached ``add``, a lock file's read). Every waiter
used to try every 2-20 ms for all of ``lock_timeout``, so a client that
sent many requests of its own session at once (one of them slow) made
each waiting request cost about 1,300 store commands in 10 s, and 32 of
them 4,500 a second, competing with every other user's saves.

Now the threads of a process that wait for one lock take turns: only the
one holding the process's turn asks the store, the others look at the
turn every :data:`TURN_PAUSE` without I/O, and each asker backs off from
:data:`FIRST_PAUSE` to :data:`LONGEST_PAUSE`. A turn is held until its waiter's own deadline at
the latest, so one an interrupt left behind ends by itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable

from ..errors import LockTimeout
from ._shared import per_process

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "TURN_PAUSE", "wait_for_lock"]

#: Seconds before the second try at a held lock; each later pause doubles.
FIRST_PAUSE = 0.002
#: The longest pause between two tries (seconds), the former polls' longest
#: too: a lock freed meanwhile is taken this late at most, and a waiter
#: asks the store at most 100 times a second (50 once it has waited 40 ms).
LONGEST_PAUSE = 0.02
#: Seconds between two looks of a waiter that is not asking at the
#: process's turn (no I/O): short, so that the next asks soon once the lock
#: changed hands, and requests of one session queued here run one after
#: another without a pause of their own.
TURN_PAUSE = 0.01


class _Turns:
    """One process's turns: per lock, the token of the waiter asking the
    store and the moment its turn ends by itself."""

    __slots__ = ("guard", "holders")

    def __init__(self) -> None:
        self.holders: dict[Hashable, tuple[object, float]] = {}
        self.guard = threading.Lock()

    def claim(self, lock: Hashable, token: object, until: float) -> bool:
        """Whether the turn of ``lock`` is now ``token``'s (free, or expired)."""
        with self.guard:
            holder = self.holders.get(lock)
            if (
                holder is not None
                and holder[0] is not token
                and holder[1] > time.monotonic()
            ):
                return False
            self.holders[lock] = (token, until)
            return True

    def give_back(self, lock: Hashable, token: object) -> None:
        """End ``token``'s turn of ``lock``, if it still holds it."""
        with self.guard:
            holder = self.holders.get(lock)
            if holder is not None and holder[0] is token:
                del self.holders[lock]


_turns_by_process: dict[int, _Turns] = {}


def wait_for_lock(take: Callable[[], bool], timeout: float, lock: Hashable) -> None:
    """Call ``take`` until it returns True; LockTimeout after ``timeout`` seconds.

    ``lock`` names the lock within the process (the store and the lock's
    name): of the threads waiting for it, one at a time calls ``take``.
    """
    if take():  # the usual case: the lock is free
        return
    deadline = time.monotonic() + timeout
    turns = per_process(_turns_by_process, _Turns)
    token = object()
    pause = FIRST_PAUSE
    asking = False
    try:
        while True:
            if not asking:  # its pauses start at FIRST_PAUSE once it asks
                asking = turns.claim(lock, token, deadline)
            if time.monotonic() >= deadline:
                raise LockTimeout(f"session lock not obtained within {timeout} s")
            if not asking:
                time.sleep(random.uniform(TURN_PAUSE / 2, TURN_PAUSE))
                continue
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, LONGEST_PAUSE)
            if take():
                return
    finally:
        if asking:
            turns.give_back(lock, token)
