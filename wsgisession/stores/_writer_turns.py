"""Turns of a process's writers of one record: a save that conflicted
writes again only when this process's earlier ones of that record are done.

A hundred requests of one session that all read it, then all write it
back with compare-and-swap, each win one write in a hundred: in a gevent
worker, whose thousand requests are all under way at once, the later ones
ran out of attempts ("too much contention") although every one of them
was this process's. Taking turns, each of them reads and writes once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WriterTurns"]


class WriterTurns:
    """Per record name, a lock the writers that conflicted take in turn."""

    def __init__(self) -> None:
        # Held for a few dictionary operations only, which never yield to
        # another greenlet: an OS lock (one made before gevent patched) is safe.
        self._guard = threading.Lock()
        self._turns: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._pid = os.getpid()

    @contextmanager
    def taken(self, name: str, timeout: float) -> Iterator[None]:
        """Wait for ``name``'s turn, at most ``timeout`` seconds: past it,
        the writer goes on without it (it fights as it did before), rather
        than failing on a wait that no server caused."""
        if self._pid != os.getpid():  # a parent's thread may have held them
            self._guard, self._turns = threading.Lock(), {}
            self._pid = os.getpid()
        with self._guard:
            turn, waiting = self._turns.setdefault(name, (threading.Lock(), [0]))
            waiting[0] += 1
        try:
            got = turn.acquire(timeout=timeout)
            try:
                yield
            finally:
                if got:
                    turn.release()
        finally:
            with self._guard:
                waiting[0] -= 1
                if not waiting[0]:
                    del self._turns[name]
