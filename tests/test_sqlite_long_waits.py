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

import pytest
from helpers import later

from wsgisession.expiry import MAX_SECONDS
from wsgisession.stores import SQLiteStore, SQLStore
from wsgisession.stores.base import Store

#: Longer than sqlite3's busy timeout can count in milliseconds (2**31 - 1).
MONTH = 31 * 86400


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
        ends = threading.Timer(0.3, writer.execute, ["ROLLBACK"])
        ends.start()
        try:
            assert store.clear_expired() == 1
        finally:
            ends.join()
            writer.close()
    finally:
        store.close()
