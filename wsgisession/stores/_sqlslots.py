"""The connections of the SQL store's :class:`~._sqlrun.Runner`, one
:class:`Slot` each, made safe against exceptions that arrive between two
of its steps (a signal handler's ``KeyboardInterrupt``, a
``gevent.Timeout``, an exception sent to the thread).

A runner has at most ``MAX_OPEN`` connections open. It counted them with
a semaphore, released as a connection was closed: an interrupt that
arrived between taking a connection and the ``try`` that gives it back,
or between closing one and releasing its place, lost that place for good,
and once all were lost every request waited the pool's timeout and
failed. A slot now counts as long as the object exists and is ``open``:
closing it is one step (:meth:`Slot.close` sets ``open`` whatever cuts the
close short), and a slot an interrupt lost (taken from the idle ones, not
yet anyone's) stops counting as it is collected, and closes its connection.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import Any

__all__ = ["Slot", "close_all", "counts"]


class Slot:
    """One of the ``MAX_OPEN`` connections a :class:`~._sqlrun.Runner` may have open:
    it counts while this object exists and is ``open``. Closed once, by
    :meth:`close`, or as garbage if an interrupt lost it between two steps
    (only in the process that opened it: never a forked child)."""

    __slots__ = (
        "__weakref__",
        "connection",
        "cursor",
        "generation",
        "holder",
        "open",
        "pid",
    )

    def __init__(self, holder: object) -> None:
        self.connection: Any = None  # until connected
        self.cursor: Any = None  # the connection's _sqlrun.Cursor, once connected
        self.generation = 0  # see Runner.renew()
        #: The run() or cursor() that has it in use; None while idle or closed.
        self.holder: object = holder
        self.open = True
        self.pid = os.getpid()

    def close(self) -> None:
        """Close the connection (if any) and give up the slot."""
        try:
            if self.connection is not None:
                _close(self.connection)
        finally:
            self.holder = None
            self.open = False

    def __del__(self) -> None:  # lost, or idle in a runner that went
        if getattr(self, "open", False) and getattr(self, "pid", 0) == os.getpid():
            self.close()


def counts(ref: weakref.ref[Slot]) -> bool:
    """Whether the slot ``ref`` refers to still holds one of ``MAX_OPEN``."""
    slot = ref()
    return slot is not None and slot.open


def close_all(idle: list[Slot], pid: int) -> None:
    if os.getpid() != pid:  # a forked child: they are its parent's
        return
    while idle:
        try:
            slot = idle.pop()
        except IndexError:  # another thread took the last one
            return
        slot.close()


def _close(connection: Any) -> None:
    """Close a DBAPI connection that may already be broken."""
    with contextlib.suppress(Exception):  # closing a dead one may fail too
        connection.close()
