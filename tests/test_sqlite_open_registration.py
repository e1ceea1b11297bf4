"""A connection the SQLite store opens is among those that the next opener
of a replaced file closes, from the moment it is open.

The opener let other threads open as soon as its connection was set up,
and only then added it to the connections that an opener of a replaced
file closes first: a thread opening the new file in between left that
connection on the old file open beside its own, the ``-shm`` file cut
back under it (SIGBUS). Found by reading the code. The rare SIGBUS left
in that test's traffic script after this change (2 runs in 220) had a
sibling cause, a connection leaving that set before its close:
test_sqlite_close_before_open.py.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import later
from sqlite_files import descriptors_open_on, replace_with_a_copy

from wsgisession.stores import SQLiteStore, _sqliteconn

pytestmark = pytest.mark.slow  # threads racing a replaced file


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_connection_just_opened_is_closed_by_the_next_opener_of_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, busy_timeout=1)
    key = store.generate_key()
    store.create(key, b"payload", later())
    store.close()  # no connection: each thread below opens its own
    old = os.stat(path)
    opened_on_old, go_on, idle = threading.Event(), threading.Event(), threading.Event()
    held_class = _sqliteconn._Held

    class PausingHeld(held_class):  # type: ignore[misc, valid-type]
        """The first reader's connection, paused as it is kept: set up, not
        yet among the store's connections."""

        def __init__(self, *args: Any) -> None:
            if threading.current_thread().name == "first-reader":
                opened_on_old.set()
                go_on.wait(2)
            super().__init__(*args)

    def first_reader() -> None:
        store.load(key)  # opens the old file, then keeps using that connection
        idle.wait(5)

    monkeypatch.setattr(_sqliteconn, "_Held", PausingHeld)
    reader = threading.Thread(target=first_reader, name="first-reader")
    reader.start()
    try:
        assert opened_on_old.wait(5)
        replace_with_a_copy(path)
        writer = threading.Thread(
            target=lambda: store.create(store.generate_key(), b"new", later())
        )
        writer.start()
        time.sleep(0.3)  # the writer opens the new file now, or waits its turn
        go_on.set()
        writer.join(5)
        assert not writer.is_alive()
        assert os.stat(path).st_ino != old.st_ino
        # The reader's connection to the old file was closed by the writer's
        # open of the new one (it reopens on its next use).
        assert descriptors_open_on((old.st_dev, old.st_ino)) == 0
    finally:
        go_on.set()
        idle.set()
        reader.join(5)
        store.close()
