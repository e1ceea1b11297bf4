"""Waiting for a held request lock: one poller per lock and process, backing off.

Each try at a held lock is a store command (an SQLite write transaction,
a Redis ``SET NX``, a memcached ``add``, a lock file's read). Every waiter
used to try every 2-20 ms for all of ``lock_timeout``, so a client that
sent many requests of its own session at once (one of them slow) made
each waiting request cost about 1,300 store commands in 10 s, and 32 of
them 4,500 a second, competing with every other user's saves.

Now the threads of a process that wait for one lock take turns: only the
one holding the process's turn asks the store, backing off from
:data:`FIRST_PAUSE` to :data:`LONGEST_PAUSE`; the others sleep on a
condition until the turn is given back (the longest waiting takes it) or
ends, looking again every :data:`RECHECK` seconds. They used to look at it
every 5-10 ms: 300 of them cost 1.5 s of CPU for a lock held 2 s. A turn
is held until its waiter's own deadline at the latest, so one an
interrupt left behind ends by itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable

from ..errors import LockTimeout
from ._shared import per_process

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "wait_for_lock"]

#: Seconds before the second try at a held lock; each later pause doubles.
FIRST_PAUSE = 0.002
#: The longest a waiter not asking sleeps without looking at the turn
#: (seconds). A wake-up can be lost to another waiter's entry in the
#: condition, left there by an interrupt inside ``Condition.wait`` (after
#: it let go of the guard, before its ``try``): the turn is then taken this
#: late at most, not at the end of the holder's turn.
RECHECK = 1.0

#: The longest pause between two tries (seconds), the former polls' longest
#: too: a lock freed meanwhile is taken this late at most, and a waiter
#: asks the store at most 100 times a second (50 once it has waited 40 ms).
LONGEST_PAUSE = 0.02


class _Turn:
    """One lock's turn: the token of the waiter asking the store, the moment
    its turn ends by itself, and the other waiters, asleep until it is free."""

    __slots__ = ("free", "holder", "until", "waiting")

    def __init__(self, guard: threading.RLock) -> None:
        self.holder: object = None
        self.until = 0.0
        self.waiting = 0
        self.free = threading.Condition(guard)


class _Turns:
    """One process's turns, one per lock some thread waits for; gone with
    its last waiter, so the table holds only the locks waited for now."""

    __slots__ = ("guard", "holders")

    def __init__(self) -> None:
        self.holders: dict[Hashable, _Turn] = {}
        # Entered by ``with`` in one C step, and its condition's release and
        # reacquire are C calls too (a plain lock's are Python code, where an
        # interrupt could land): as the memory store's guard.
        self.guard = threading.RLock()

    def claim(self, lock: Hashable, token: object, until: float) -> bool:
        """Make the turn of ``lock`` ``token``'s until ``until``, waiting
        (without waking) for it to be given back or to end; False if it is
        not ``token``'s by ``until``."""
        with self.guard:
            turn = self.holders.get(lock)
            if turn is None:
                turn = self.holders[lock] = _Turn(self.guard)
            turn.waiting += 1
            try:
                while True:
                    moment = time.monotonic()
                    if turn.holder is None or turn.until <= moment:
                        turn.holder, turn.until = token, until
                        return True
                    if until <= moment:
                        return False
                    turn.free.wait(min(until, turn.until, moment + RECHECK) - moment)
            finally:
                turn.waiting -= 1
                if turn.holder is None and turn.waiting:
                    turn.free.notify()  # a wake-up it took, interrupted
                self._forget_unused(lock, turn)

    def give_back(self, lock: Hashable, token: object) -> None:
        """End ``token``'s turn of ``lock``, if it holds it, and wake the
        longest waiting of the others to take it."""
        with self.guard:
            turn = self.holders.get(lock)
            if turn is not None and turn.holder is token:
                turn.holder = None
                turn.free.notify()
                self._forget_unused(lock, turn)

    def _forget_unused(self, lock: Hashable, turn: _Turn) -> None:
        """Drop ``turn`` if no one holds it or waits for it (guard held)."""
        if turn.waiting == 0 and (
            turn.holder is None or turn.until <= time.monotonic()
        ):
            self.holders.pop(lock, None)


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
    try:
        if not turns.claim(lock, token, deadline):
            raise LockTimeout(f"session lock not obtained within {timeout} s")
        while True:  # its pauses start at FIRST_PAUSE once it asks
            if time.monotonic() >= deadline:
                raise LockTimeout(f"session lock not obtained within {timeout} s")
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, LONGEST_PAUSE)
            if take():
                return
    finally:  # also if an interrupt landed as claim() returned
        try:
            turns.give_back(lock, token)
        except BaseException:  # an interrupt cut it short: once more
            turns.give_back(lock, token)
            raise
