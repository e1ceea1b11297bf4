"""Descriptors that an exception arriving between two steps cannot leak.

An exception sent to the thread (``PyThreadState_SetAsyncExc``), or a
signal handler's ``KeyboardInterrupt`` or ``SystemExit``, is raised as a
call has returned, before its result is stored: ``fd = os.open(...)``
then loses the descriptor, and so does an interrupt before the ``try``
that closes it, or as a function returning it returns. A bare ``int`` is
never closed by the garbage collector: a long-running server under such
interrupts keeps more and more files open, until "Too many open files".

A :class:`Descriptor` owns its number from the start: ``os.open`` is
called by C code (``list.extend`` over ``map``) that stores the number in
the object before Python looks for an exception again, and the object
closes it as it is collected. :meth:`Descriptor.close` takes the number
out and closes it in one such step: never closed twice (a second
``close`` could close a file another thread has opened since).
"""

from __future__ import annotations

import collections
import contextlib
import os

__all__ = ["Descriptor"]


class Descriptor:
    """A descriptor of ``path`` opened with ``os.open(path, flags, mode)``;
    closed by :meth:`close`, or as it is collected."""

    __slots__ = ("_numbers",)

    def __init__(self, path: str, flags: int, mode: int = 0o777) -> None:
        #: The descriptor while it is open, else nothing.
        self._numbers: list[int] = []
        self._numbers.extend(map(os.open, (path,), (flags,), (mode,)))

    @property
    def fd(self) -> int:
        """The descriptor's number (ValueError once closed)."""
        if not self._numbers:
            raise ValueError("I/O operation on a closed descriptor")
        return self._numbers[0]

    def close(self) -> None:
        """Close the descriptor (again: nothing)."""
        with contextlib.suppress(IndexError):  # none left: closed
            collections.deque(map(os.close, iter(self._numbers.pop, None)), maxlen=0)

    def __del__(self) -> None:
        if getattr(self, "_numbers", None):  # not if __init__ was cut short
            with contextlib.suppress(OSError):  # nothing to tell anyone
                self.close()

    def __repr__(self) -> str:
        return f"<Descriptor {self._numbers[0] if self._numbers else 'closed'}>"
