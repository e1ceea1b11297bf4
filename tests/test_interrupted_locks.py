"""Request locks of the memory, SQLite, file and SQL stores when an exception
arrives as they are taken or released: a signal handler's
``KeyboardInterrupt`` or ``SystemExit``, a ``gevent.Timeout`` around the
request, an exception sent to the thread (see interrupting.py).

The lock was taken (its entry, row or file written) and the interrupt came
before the code that releases it, or it came as the release began: the
session stayed locked for ``lock_ttl``, and every request of its user
meanwhile waited ``lock_timeout`` and failed with LockTimeout. (The Redis
and memcached stores: test_interrupts.py.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interrupting import Interrupt, interrupted_at, interrupted_on
from sql_support import sql_url

from wsgisession.errors import LockTimeout
from wsgisession.keys import generate_key
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore, SQLStore
from wsgisession.stores._lockfile import RequestLocks
from wsgisession.stores._shared import per_process
from wsgisession.stores._sqlrun import Runner
from wsgisession.stores.base import Store

Interrupting = Callable[[], contextlib.AbstractContextManager[Any]]


def c_returned(name: str, caller: Callable[..., Any] | None = None) -> Interrupting:
    """As the C function ``name`` (its first call, by code of ``caller``'s
    module if given) has returned."""
    module = None if caller is None else caller.__code__.co_filename
    return lambda: interrupted_on(
        lambda frame, event, arg: (
            event == "c_return"
            and getattr(arg, "__name__", None) == name
            and module in (None, frame.f_code.co_filename)
        )
    )


def entering(function: Callable[..., Any]) -> Interrupting:
    return lambda: interrupted_at(function)


#: kind -> (as the lock has just been taken, as its release begins)
POINTS: dict[str, tuple[Interrupting, Interrupting]] = {
    # the entry is in the dict and its guard's lock let go; the guard is
    # being looked up for the release
    "memory": (c_returned("__exit__"), entering(per_process)),
    "sqlite": (c_returned("execute", SQLiteStore._write), entering(SQLiteStore._write)),
    "file": (c_returned("link"), entering(RequestLocks.release)),
    # the row is in; its connection is going back
    "sql-sqlite": (entering(Runner._put_back), entering(Runner.run)),
    "sql-postgresql": (entering(Runner._put_back), entering(Runner.run)),
}


@pytest.fixture(params=sorted(POINTS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if kind == "memory":
        made = MemoryStore()
    elif kind == "sqlite":
        made = SQLiteStore(str(tmp_path / "sessions.sqlite3"))
    elif kind == "file":
        made = FileStore(str(tmp_path / "sessions"))
    else:
        made = SQLStore(sql_url(kind, request, tmp_path))
        made.create_tables()
    with made:
        yield made


def free_lock(store: Store, key: str) -> None:
    """The session's lock is free: another request takes it at once (in a
    thread, so that a store left locked for good fails the test, not hangs it)."""
    outcome: list[object] = []

    def other_request() -> None:
        try:
            with store.lock(key, 0.2, 60):
                outcome.append("taken")
        except LockTimeout as exc:
            outcome.append(exc)

    thread = threading.Thread(target=other_request, daemon=True)
    thread.start()
    thread.join(5)
    assert outcome == ["taken"], "the session stayed locked (or the store hung)"


def test_a_lock_taken_as_an_interrupt_came_is_released(kind: str, store: Store) -> None:
    """Interrupted between taking the lock and the ``try`` that releases it."""
    key = generate_key()
    taking, _ = POINTS[kind]
    with pytest.raises(Interrupt), taking(), store.lock(key, 1.0, 60):
        pass
    free_lock(store, key)


def test_a_lock_whose_release_was_interrupted_is_released(
    kind: str, store: Store
) -> None:
    """Interrupted as the release begins (the request's work done)."""
    key = generate_key()
    _, releasing = POINTS[kind]
    lock = store.lock(key, 1.0, 60)
    lock.__enter__()
    with pytest.raises(Interrupt), releasing():
        lock.__exit__(None, None, None)
    free_lock(store, key)


def test_an_interrupt_never_leaves_the_memory_stores_guard_taken() -> None:
    """The memory store guarded its request locks with ``with condition``,
    whose ``__enter__`` is Python code: interrupted just after it took the
    condition's lock, the ``with`` never started and the lock stayed taken.
    Every request with ``lock = true`` then hung for good, whatever its
    session (its lock_timeout never came: it waited to look at the locks)."""
    store = MemoryStore()
    with (
        contextlib.suppress(Interrupt),  # none where the guard is entered in C
        c_returned("__enter__")(),
        store.lock(generate_key(), 1.0, 60),
    ):
        pass
    free_lock(store, generate_key())
