"""The SQLite store's ``-wal`` file in long-running use.

A connection that keeps a read transaction open (a stuck request, a
``sqlite3`` shell left after ``BEGIN``, a backup) stops every checkpoint
at its snapshot: the ``-wal`` file grows by about a page per save until
it ends. SQLite then starts the file over, but keeps its size: without
``journal_size_limit`` a 155 KB database kept a 330 MB ``-wal`` for as
long as the app ran (found by a review of WAL growth on ext4).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from helpers import later

from wsgisession.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.slow  # writes the WAL past its 16 MB limit

KEYS = 20
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # what docs/stores.rst gives


def _saves(store: SQLiteStore, keys: list[str], count: int) -> None:
    """``count`` saves of ~500-byte sessions, each a page of the ``-wal``."""
    for i in range(count):
        key = keys[i % len(keys)]
        store.update(key, lambda _: (os.urandom(500), later()), store.load(key))


def test_the_wal_shrinks_back_once_a_reader_that_held_it_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    keys = [store.generate_key() for _ in range(KEYS)]
    for key in keys:
        store.create(key, b"{}", later())
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM wsgisession_sessions").fetchone()
    _saves(store, keys, WAL_SIZE_LIMIT // 4096 + 1000)  # past the limit
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > WAL_SIZE_LIMIT, "no checkpoint passes a reader"
    reader.execute("COMMIT")
    reader.close()
    _saves(store, keys, 100)  # a checkpoint, then the file starts over
    assert wal.stat().st_size <= WAL_SIZE_LIMIT
    store.close()
