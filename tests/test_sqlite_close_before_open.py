"""A connection to a replaced database file that its own thread (after a
failed statement) or a store's ``close()`` is closing is closed before any
connection to the new file is set up.

Both took the connection out of the ones an opener of the new file closes
first, and only then closed it: an opener in between set up its own
connection beside it, and the old connection's close let go of the
``-shm`` file and with it the process's locks on it (POSIX locks are the
process's), so another process opening the new file cut the ``-shm``
back under the new connections: SIGBUS. Found under the traffic script of
``test_sqlite_live_faults.py`` (the file replaced from another process:
2 crashes in 162 runs), with a thread watching ``/proc/self/fd``: two
descriptors of the process on one ``-shm`` file, the thread closing its
connection after a failed statement, another opening the new file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from helpers import later
from sqlite_files import descriptors_open_on, replace_with_a_copy

from wsgisession.errors import StoreUnavailable
from wsgisession.stores import SQLiteStore, _sqliteconn
from wsgisession.stores import sqlite as sqlite_store


def _failing(conn: sqlite3.Connection) -> None:
    """A statement that fails as the file is replaced under it."""
    raise sqlite3.OperationalError("disk I/O error")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("closer", ["failed-statement", "store-close"])
def test_a_connection_being_closed_is_closed_before_the_new_file_is_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closer: str
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store, other_store = SQLiteStore(path), SQLiteStore(path)
    key = store.generate_key()
    store.create(key, b"payload", later())
    store.close()  # no connection: the closer thread below opens its own
    opened, replaced = threading.Event(), threading.Event()
    closing, go_on = threading.Event(), threading.Event()
    old_descriptors_at_set_up: dict[str, int] = {}
    held_class, set_up = _sqliteconn._Held, sqlite_store.set_up_database

    class PausingHeld(held_class):  # type: ignore[misc, valid-type]
        """The closer thread's close, paused before it takes the lock."""

        def close(self) -> None:
            if threading.current_thread().name == "closer":
                closing.set()
                go_on.wait(5)
            super().close()

    def recording_set_up(conn: sqlite3.Connection, busy_timeout: float) -> None:
        name = threading.current_thread().name
        old_descriptors_at_set_up[name] = descriptors_open_on(old)
        set_up(conn, busy_timeout)

    def open_then_close() -> None:
        store.load(key)
        opened.set()
        replaced.wait(5)
        if closer == "store-close":
            store.close()
        else:  # the thread's connection is stale for reads up to a second
            with pytest.raises(StoreUnavailable):
                store._run("load a session", _failing)

    monkeypatch.setattr(_sqliteconn, "_Held", PausingHeld)
    monkeypatch.setattr(sqlite_store, "set_up_database", recording_set_up)
    old_info = os.stat(path)
    old = (old_info.st_dev, old_info.st_ino)
    closing_thread = threading.Thread(target=open_then_close, name="closer")
    closing_thread.start()
    opener_store = other_store if closer == "store-close" else store
    opener = threading.Thread(target=lambda: opener_store.load(key), name="opener")
    try:
        assert opened.wait(5)
        replace_with_a_copy(path)
        replaced.set()
        assert closing.wait(5)
        opener.start()
        opener.join(5)
        assert not opener.is_alive()
        assert old_descriptors_at_set_up["opener"] == 0
    finally:
        go_on.set()
        closing_thread.join(5)
        store.close()
        other_store.close()
