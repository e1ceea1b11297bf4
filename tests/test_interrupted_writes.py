"""The SQLite and file stores' writes when an exception arrives in the middle
of them: a signal handler's ``KeyboardInterrupt``, a ``gevent.Timeout``,
an exception sent to the thread (see interrupting.py). Found by the soak of
test_soak.py; each case here reaches its moment every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import _GeneratorContextManager
from pathlib import Path
from types import FrameType

import pytest
from helpers import later
from interrupting import Hit, Interrupt, interrupted_at, interrupted_on

from wsgisession.keys import generate_key
from wsgisession.stores import FileStore, SQLiteStore
from wsgisession.stores._fileaccess import FileAccess
from wsgisession.stores._flock import ShardLocks
from wsgisession.stores.base import Store, now, storage_key


def in_thread(work: Callable[[], object], wait: float = 5.0) -> list[object]:
    """``work()`` in another thread (a store left locked fails the test
    rather than hang it): ``[its result]`` or ``[the exception]``."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # noqa: BLE001 - the caller looks at it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return outcome


def write(store: Store, key: str, payload: bytes) -> Callable[[], str]:
    return lambda: store.update(key, lambda current: (payload, later()), None)


def test_an_interrupt_as_a_sqlite_transaction_begins_leaves_none_open(
    tmp_path: Path,
) -> None:
    """Interrupted just after ``BEGIN IMMEDIATE`` (before the ``try`` that
    rolls back), the thread's connection stayed in the transaction, holding
    the database's write lock: every other thread's and process's save
    failed ("database is locked") after the busy timeout, and the thread's
    own later writes, inside that transaction, were never committed."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.2)
    key = generate_key()
    assert store.create(key, b"one", later()) == key
    code = SQLiteStore._transaction.__wrapped__.__code__  # type: ignore[attr-defined]
    began = interrupted_on(
        lambda frame, event, arg: (
            event == "c_return"
            and frame.f_code is code
            and getattr(arg, "__name__", None) == "execute"
        )
    )
    with pytest.raises(Interrupt), began:
        write(store, key, b"two")()
    assert in_thread(write(store, key, b"three")) == [key]
    write(store, key, b"four")()
    with SQLiteStore(path) as other:
        record = other.load(key)
    assert record is not None
    assert record.payload == b"four"
    store.close()


def test_an_interrupt_as_a_shard_lock_is_taken_never_leaves_it_held(
    tmp_path: Path,
) -> None:
    """Interrupted just after its thread lock was taken (before the ``try``
    that releases it), or as the taking returns, a shard lock of the file
    store stayed held for good: every later save of a session of that
    shard (one in 256) waited lock_timeout and failed with StoreUnavailable."""
    with FileStore(tmp_path / "sessions") as store:
        key = generate_key()
        assert store.create(key, b"one", later()) == key
        shard = storage_key(key)[:2]
        for interrupt in (
            interrupted_on(taken),
            interrupted_at(ShardLocks.acquire, returning=True),
            interrupted_on(entered(FileAccess._locked)),
        ):
            with pytest.raises(Interrupt), interrupt, store._locked(shard):
                pass
            store.lock_timeout = 0.5
            assert in_thread(write(store, key, b"two")) == [key]


def entered(function: Callable[..., object]) -> Hit:
    """As the ``with`` of ``function`` (a ``contextmanager``) has its
    ``__enter__`` returning: the generator waits at its ``yield``, inside
    its ``try``, and the ``with`` never began."""
    code = function.__wrapped__.__code__  # type: ignore[attr-defined]

    def hit(frame: FrameType, event: str, arg: object) -> bool:
        manager = frame.f_locals.get("self")
        return (
            event == "return"
            and frame.f_code is _GeneratorContextManager.__enter__.__code__
            and getattr(getattr(manager, "gen", None), "gi_code", None) is code
        )

    return hit


def taken(frame: FrameType, event: str, arg: object) -> bool:
    """As ShardLocks.acquire's call of the thread lock's acquire has returned."""
    return (
        event == "c_return"
        and frame.f_code is ShardLocks.acquire.__code__
        and getattr(arg, "__name__", None) == "acquire"
    )


def test_an_interrupted_release_of_a_file_lock_is_undone_at_once(
    tmp_path: Path,
) -> None:
    """Interrupted while its release held the shard's lock, a request lock
    of the file store was undone by releasing it again, which waited for
    the shard's lock that the interrupted release still held (its frames
    live on in the exception's traceback): the request stalled for the
    store's lock_timeout, and every request of that shard with it."""
    with FileStore(tmp_path / "sessions") as store:
        key = generate_key()
        assert store.create(key, b"one", later()) == key
        lock = store.lock(key, 1.0, 60)
        lock.__enter__()
        stalled = in_thread(lambda: _release_interrupted(lock), wait=3.0)
        assert len(stalled) == 1, "the interrupted release stalled"
        assert stalled == ["interrupted"]
        assert in_thread(lambda: _lock_once(store, key)) == ["taken"]


def _release_interrupted(lock: object) -> object:
    with interrupted_on(entered(FileAccess._locked)):
        try:
            lock.__exit__(None, None, None)  # type: ignore[attr-defined]
        except Interrupt:  # dropped, with its traceback, as a server would
            return "interrupted"
    return "released"


def _lock_once(store: Store, key: str) -> str:
    with store.lock(key, 0.2, 60):
        return "taken"


def _guard_taken(frame: FrameType, event: str, arg: object) -> bool:
    """As sweep_expired's taking of its guard has returned (the C call that
    takes it: the lock's ``acquire``, or what calls that for it)."""
    return (
        event == "c_return"
        and frame.f_code is FileStore.sweep_expired.__code__
        and getattr(arg, "__name__", None) in ("acquire", "extend")
    )


def test_an_interrupt_as_a_sweep_takes_its_guard_never_leaves_it_taken(
    tmp_path: Path,
) -> None:
    """Interrupted just after it took the guard that keeps sweeps one at a
    time (before the ``try`` that lets it go), a sweep of the file store
    left it taken for good: no sweep ran again in the process (expired
    sessions piled up on disk), and close() waited for it forever."""
    store = FileStore(tmp_path / "sessions")  # closed in a thread: it may hang
    with pytest.raises(Interrupt), interrupted_on(_guard_taken) as shot:
        store.sweep_expired(100)
    assert shot.fired
    dead = generate_key()
    assert store.create(dead, b"dead", now() - 5) == dead
    assert in_thread(lambda: store.sweep_expired(1000)) == [1]
    assert in_thread(store.close, wait=2.0) == [None]
