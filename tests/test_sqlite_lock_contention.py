"""Session locks on a SQLite file that another connection keeps busy.

Many waiters on one file can keep one of them out of SQLite's write lock
for longer than the busy timeout ("database is locked"). While taking a
session lock that is contention, not an outage: the waiter tries again
until the lock's own timeout, as for a lock another request holds. It
raised StoreUnavailable (CI saw it with 16 waiters on a loaded machine).
Releasing the lock tries again too: the row was left held for its whole
ttl, and every request of the session waited for it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import later

from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.stores import SQLiteStore, SQLStore
from wsgisession.stores.base import Store

BUSY_TIMEOUT = 0.1  # SQLite's own wait for the write lock
HOLD = 0.5  # how long the other connection keeps the write lock


def _store(kind: str, path: Path) -> Store:
    if kind == "sqlite":
        store: Store = SQLiteStore(path, busy_timeout=BUSY_TIMEOUT)
    else:
        store = SQLStore(f"sqlite:///{path}", timeout=BUSY_TIMEOUT)
    store.create(store.generate_key(), b"{}", later())  # tables made
    return store


@contextmanager
def writer_holding(path: Path) -> Iterator[threading.Thread]:
    """Another connection holds the write lock for HOLD s from now."""
    held = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=5)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(HOLD)
        conn.commit()
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        yield thread
    finally:
        thread.join()


@pytest.fixture(params=["sqlite", "sql-sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.slow  # another connection holds the file for 0.5 s
def test_a_lock_waits_past_the_busy_timeout_for_another_writer(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path)
    key = store.generate_key()
    try:
        with writer_holding(path):
            started = time.monotonic()
            with store.lock(key, 5.0, 60.0):  # raised StoreUnavailable
                waited = time.monotonic() - started
        assert waited >= HOLD - 0.2, waited
    finally:
        store.close()


@pytest.mark.slow  # another connection holds the file for 0.5 s
def test_a_lock_released_while_another_writer_holds_the_file_is_released(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path)
    key = store.generate_key()
    try:
        lock = store.lock(key, 5.0, 60.0)
        lock.__enter__()
        with writer_holding(path):
            lock.__exit__(None, None, None)  # the release meets the busy file
        with store.lock(key, 0.05, 60.0):  # the row was held for its ttl
            pass
    finally:
        store.close()


@pytest.mark.slow  # another connection holds the file for 0.5 s
def test_a_lock_still_times_out_while_the_file_stays_busy(
    kind: str, tmp_path: Path
) -> None:
    """Busy for longer than the lock's timeout: LockTimeout, as for a held lock."""
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path)
    try:
        key = store.generate_key()
        with writer_holding(path), pytest.raises(LockTimeout), store.lock(key, 0.2, 60):
            pass  # pragma: no cover - never reached
    finally:
        store.close()


def test_other_errors_while_taking_a_lock_still_raise(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path)
    try:
        conn = sqlite3.connect(path)
        table = (
            "wsgisession_locks" if kind == "sqlite" else "wsgisession_sessions_locks"
        )
        conn.execute(f"DROP TABLE {table}")
        conn.commit()
        conn.close()
        with pytest.raises(StoreUnavailable), store.lock(store.generate_key(), 5, 60):
            pass  # pragma: no cover - never reached
    finally:
        store.close()
