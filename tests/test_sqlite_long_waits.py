"""SQLite's wait for another writer at its limits: a long ``timeout`` (the
SQL store's) or ``busy_timeout`` (the SQLite store's) still waits.

``sqlite3`` turns its ``timeout`` into a C int of milliseconds: one of more
than 24.8 days overflowed, and a save that met another writer failed at
once ("database is locked") instead of waiting for it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import later

from wsgisession.expiry import MAX_SECONDS
from wsgisession.storecheck import reach_store
from wsgisession.stores import SQLiteStore, SQLStore, _sqlcleanup
from wsgisession.stores import sqlite as sqlite_module
from wsgisession.stores.base import Store

#: Longer than sqlite3's busy timeout can count in milliseconds (2**31 - 1).
MONTH = 31 * 86400

#: How long another writer holds the file in the clear-expired tests: past
#: their busy timeout (0.05 s) and the pause before the next try, well
#: within the ten busy timeouts a cleanup waits.
HELD = 0.12


def _store(kind: str, path: Path, timeout: float) -> Store:
    if kind == "sqlite":
        return SQLiteStore(path, busy_timeout=timeout)
    return SQLStore(f"sqlite:///{path}", timeout=timeout)


@pytest.mark.slow  # another writer holds the database for half a second
@pytest.mark.parametrize("timeout", [MONTH, MAX_SECONDS])
@pytest.mark.parametrize("kind", ["sqlite", "sql-sqlite"])
def test_a_save_with_a_long_sqlite_wait_waits_for_another_writer(
    kind: str, timeout: float, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path, timeout)
    try:
        first = store.generate_key()
        assert store.create(first, b"payload", later()) == first  # tables made
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("BEGIN IMMEDIATE")  # another process's save, under way
        ends = threading.Timer(0.5, writer.execute, ["ROLLBACK"])
        ends.start()
        try:
            key = store.generate_key()
            assert store.create(key, b"payload", later()) == key
        finally:
            ends.join()
            writer.close()
        assert store.load(key) is not None
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "sql-sqlite"])
def test_clear_expired_waits_out_writers_past_the_busy_timeout(
    kind: str, tmp_path: Path
) -> None:
    """A cron job's clear-expired beside busy workers: another writer holding
    the file longer than the busy timeout delays it, never fails it (CI saw
    "database is locked" from ``wsgisession clear-expired`` beside four
    worker processes)."""
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path, 0.05)
    try:
        expired = store.generate_key()
        assert store.create(expired, b"payload", later(-10)) == expired
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("BEGIN IMMEDIATE")  # a worker's save, under way
        ends = threading.Timer(HELD, writer.execute, ["ROLLBACK"])
        ends.start()
        try:
            assert store.clear_expired() == 1
        finally:
            ends.join()
            writer.close()
    finally:
        store.close()


def _busy_for(path: Path, seconds: float, begin: str = "BEGIN IMMEDIATE") -> None:
    """Another process's writer, holding the file for ``seconds`` from now."""
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute(begin)

    def end() -> None:
        writer.execute("ROLLBACK")
        writer.close()

    threading.Timer(seconds, end).start()


@pytest.mark.parametrize("kind", ["sqlite", "sql-sqlite"])
def test_clear_expired_waits_out_a_writer_arriving_between_batches(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's save that begins after the first batch, and holds the file
    past the busy timeout: the next batch waits for it too. SQLStore's
    batches run through SQLAlchemy, whose error wraps sqlite3's: it was not
    known as "database is locked", and clear_expired() failed at once."""
    monkeypatch.setattr(_sqlcleanup, "BATCH", 2)
    monkeypatch.setattr(sqlite_module, "_BATCH", 2)
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path, 0.05)
    try:
        for _ in range(5):
            assert store.create(store.generate_key(), b"payload", later(-10))
        seen: list[int] = []

        def progress(removed: int, total: int) -> None:
            if not seen:  # the first batch is done: a save begins
                _busy_for(path, HELD)
            seen.append(removed)

        assert store.clear_expired(progress) == 5
        assert seen[-1] == 5
    finally:
        store.close()


@pytest.mark.slow
def test_sql_clear_expired_count_waits_out_an_exclusive_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLStore on SQLite keeps a rollback journal, where a writer that
    commits holds the file against readers too: the count of a
    clear_expired() with progress (``wsgisession clear-expired`` on a
    terminal) waits it out as the batches do."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLStore(f"sqlite:///{path}", timeout=0.05)
    try:
        assert store.create(store.generate_key(), b"payload", later(-10))
        count_dead = store._count_dead
        began: list[bool] = []

        def count_meanwhile(cursor: Any, moment: float) -> int:
            if not began:  # a worker's save commits as the count begins
                began.append(True)
                _busy_for(path, HELD, "BEGIN EXCLUSIVE")
            return count_dead(cursor, moment)

        monkeypatch.setattr(store, "_count_dead", count_meanwhile)
        assert store.clear_expired(lambda removed, total: None) == 1
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "sql-sqlite"])
def test_the_cli_reaching_a_busy_sqlite_store_takes_it_as_reached(
    kind: str, tmp_path: Path
) -> None:
    """``wsgisession clear-expired`` and ``check`` first ask the store about a
    made-up key; a writer holding the file past the busy timeout made that
    read fail with "database is locked", and the cron job with it (CI, four
    worker processes on a loaded machine). A busy store answered: reached."""
    path = tmp_path / "sessions.sqlite3"
    store = _store(kind, path, 0.05)
    try:
        assert store.create(store.generate_key(), b"payload", later(-10))
        _busy_for(path, HELD, "BEGIN EXCLUSIVE")
        reach_store(store, "check the path")  # raised SessionError
        assert store.clear_expired() == 1
    finally:
        store.close()
