"""The file store's descriptors when an exception arrives in the middle of
its work: a signal handler's ``KeyboardInterrupt`` or ``SystemExit``, an
exception sent to an overrunning request's thread (see interrupting.py).

``fd = os.open(...)`` loses the descriptor to an interrupt that arrives
as the call returns (before the number is stored) or before the ``try``
that closes it: a bare ``int``, which no garbage collection closes. A
long-running server under such interrupts (a soak of 32 threads: one in
five interrupts) kept more and more record and lock files open, and
would end with "Too many open files".
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import os
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from helpers import later
from interrupting import Hit, Interrupt, in_module, interrupted_on

from wsgisession.keys import generate_key
from wsgisession.stores import FileStore
from wsgisession.stores.base import now

#: Every module of the file store that opens or closes a descriptor.
MODULES = [
    importlib.import_module(f"wsgisession.stores.{name}").__file__ or ""
    for name in (
        "file",
        "_descriptor",
        "_fileaccess",
        "_filerecord",
        "_fileusers",
        "_flock",
        "_lockfile",
    )
]


def in_the_store(*paths: str) -> Hit:
    """:func:`in_module` but as a generator yields: raised there, an
    exception ends the generator without its ``finally`` (a request lock's
    ``with`` would never release it), where a real one arrives in the
    caller's next step, the generator suspended, and its ``finally`` runs
    as it is collected (see test_interrupted_writes.py's ``entered``)."""
    anywhere = in_module(*paths)

    def hit(frame: FrameType, event: str, arg: Any) -> bool:
        yielding = event == "return" and frame.f_code.co_flags & inspect.CO_GENERATOR
        return not yielding and anywhere(frame, event, arg)

    return hit


def descriptors_under(directory: Path) -> list[str]:
    """The files under ``directory`` this process has a descriptor of."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the one listdir had open
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{directory}{os.sep}") or target == str(directory):
                found.append(target)
    return found


def every_operation(store: FileStore, keys: list[str]) -> None:
    """What requests do to the store: each way a record file, a shard's
    lock file, a user index and a request lock file are opened. The same
    keys each time, none left behind: every run meets the same points."""
    key, new, bound, dead = keys
    store.load(key)
    store.update(key, lambda current: (b"small", later()), None)  # in place
    store.update(key, lambda current: (b"x" * 5000, later()), None)  # replaced
    store.create(new, b"new", later())
    store.create_user_session("alice", bound, b"bound", later())
    store.user_session_records("alice")
    with store.lock(key, 1.0, 60.0):
        store.load(key)
    store.create(dead, b"dead", now() - 5)
    store.sweep_expired(100)
    store.delete(new)
    store.delete(bound)


# An interrupt in a lost object's __del__ is reported and dropped, as Python
# does for any exception there.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.usefixtures("young_heap")  # a collection after each interrupt
@pytest.mark.slow  # about 15 s: the operations run once per point of the store
def test_an_interrupt_anywhere_in_the_file_store_leaks_no_descriptor(
    tmp_path: Path,
) -> None:
    """An interrupt at each point of the file store's code in turn (every
    call, return and C call of its modules): once the store is closed, no
    descriptor of a file of the store is left open. ``gc.collect()`` stands
    for the exception going: what its traceback's frames held goes with
    them (a request lock whose ``with`` never began, too)."""
    root = tmp_path / "sessions"
    store = FileStore(root)
    keys = [generate_key() for _ in range(4)]
    assert store.create(keys[0], b"data", later()) == keys[0]
    hits = 0
    while True:
        hits += 1
        with (
            contextlib.suppress(Interrupt),
            interrupted_on(in_the_store(*MODULES), hits) as shot,
        ):
            every_operation(store, keys)
        if not shot.fired:
            break
        gc.collect()  # what the exception's frames held goes with them
    assert hits > 200  # the sweep went through the modules
    store.close()
    gc.collect()
    assert descriptors_under(root) == []
    record = store.load(keys[0])  # the store still works
    assert record is not None
    store.close()
