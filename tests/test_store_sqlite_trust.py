"""SQLiteStore refuses a database file that someone else could have written:
whoever can write it can plant a session (and be logged in as anyone)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import later, payload_of

from wsgisession.errors import ConfigError
from wsgisession.stores.base import storage_key
from wsgisession.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")


def planted(path: Path, key: str) -> None:
    """A database made at ``path`` before the app ran, holding a session
    for ``key``, as a local user who could write there would make it."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE wsgisession_sessions (key TEXT PRIMARY KEY,"
            " payload BLOB NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO wsgisession_sessions VALUES (?, ?, ?)",
            (storage_key(key), b'{"user_id": "admin"}', time.time() + 600),
        )
    db.close()


def test_a_database_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        store.load(key)
    assert "mode 666" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file away")
def test_a_database_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        store.load(key)
    assert "uid 65534" in str(info.value)


def test_a_database_file_of_this_user_closed_to_others_is_used(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o644)  # readable, as sqlite3 makes it: not refused
    assert payload_of(store, key) == b'{"user_id": "admin"}'
    store.update(key, lambda current: (b"{}", later()), None)
    assert payload_of(store, key) == b"{}"
