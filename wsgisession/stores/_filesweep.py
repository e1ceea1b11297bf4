"""The file store's walk over its shards, a bounded step per sweep.

A sweep must cost little however many records there are, yet successive
sweeps must reach every record. So the walk keeps its place between
sweeps: the shard it is in, and an open ``os.scandir`` iterator over that
shard's directory. Each step hands out at most the names it was asked for;
an exhausted shard closes its iterator and the walk moves on to the next
(``00`` .. ``ff``, then round again). Each process starts at a random
shard, so several processes do not all sweep the same one.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator

__all__ = ["NameWalk", "ShardWalk", "is_record_name", "is_shard_name"]

_SHARDS = 256
_HEX = frozenset("0123456789abcdef")
#: Held only while a forked child replaces a walk's guard (see ShardWalk.guard).
_REPLACING = threading.Lock()


def is_shard_name(name: str) -> bool:
    return len(name) == 2 and _HEX.issuperset(name)


def is_record_name(name: str, shard: str) -> bool:
    return len(name) == 64 and name.startswith(shard) and _HEX.issuperset(name)


class ShardWalk:
    """Where this process's sweeps of the store under ``root`` have got to.

    ``guard`` is held by the sweeping thread: one sweep at a time.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._guard, self._guard_pid = threading.Lock(), os.getpid()
        self._index = random.randrange(_SHARDS)
        self._entries: os._ScandirIterator[str] | None = None
        self._pid = os.getpid()

    @property
    def guard(self) -> threading.Lock:
        """The lock of the sweeping thread; a forked child's own. The
        parent's may be held by a thread that was sweeping at the fork,
        which the child does not have: its sweeps would never run again,
        and ``close()`` would wait for it forever."""
        if self._guard_pid != os.getpid():
            with _REPLACING:  # two threads of the child make one new guard
                if self._guard_pid != os.getpid():
                    self._guard, self._guard_pid = threading.Lock(), os.getpid()
        return self._guard

    def batches(self, limit: int) -> Iterator[tuple[str, list[str], bool]]:
        """``(shard, names, round_done)`` steps, ``limit`` names in all at most.

        ``round_done`` is True on the step that finished shard ``ff``. One
        call visits each shard at most once, so a small store is not walked
        twice by one sweep.
        """
        if self._pid != os.getpid():  # forked: the iterator's position is shared
            self.close()
            self._pid = os.getpid()
            self._index = random.randrange(_SHARDS)  # and workers start apart
        budget = limit
        for _ in range(_SHARDS):
            shard = f"{self._index:02x}"
            if self._entries is None:
                try:
                    self._entries = os.scandir(os.path.join(self.root, shard))
                except FileNotFoundError:  # a shard with no record yet
                    yield shard, [], self._advance()
                    continue
            names = [entry.name for _, entry in zip(range(budget), self._entries)]
            budget -= len(names)
            if budget > 0:  # the shard ran out before the budget did
                yield shard, names, self._advance()
            else:
                yield shard, names, False
                return

    def close(self) -> None:
        """Drop the open iterator; the walk resumes at the start of its shard."""
        if self._entries is not None:
            self._entries.close()
            self._entries = None

    def __del__(self) -> None:  # a store dropped without close(): no warning
        self.close()

    def _advance(self) -> bool:
        """Move on to the next shard; True when that completes a round."""
        self.close()
        self._index = (self._index + 1) % _SHARDS
        return self._index == 0


class NameWalk:
    """Where this process's sweeps of one directory (the user indexes) have
    got to: an open ``os.scandir`` iterator, a bounded step per sweep.

    The caller serialises the steps (the file store's sweep guard).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._entries: os._ScandirIterator[str] | None = None
        self._pid = os.getpid()

    def step(self, limit: int) -> list[str]:
        """The next ``limit`` names at most, going on where the previous step
        stopped; past the last name, the next step starts again."""
        if self._pid != os.getpid():  # forked: the iterator's position is shared
            self.close()
            self._pid = os.getpid()
        if self._entries is None:
            try:
                self._entries = os.scandir(self.directory)
            except FileNotFoundError:  # no user index yet
                return []
        names = [entry.name for _, entry in zip(range(limit), self._entries)]
        if len(names) < limit:  # the end: start again next time
            self.close()
        return names

    def close(self) -> None:
        """Drop the open iterator; the next step starts at the beginning."""
        if self._entries is not None:
            self._entries.close()
            self._entries = None

    def __del__(self) -> None:  # a store dropped without close(): no warning
        self.close()
