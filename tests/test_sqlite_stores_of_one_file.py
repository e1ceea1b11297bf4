"""Two SQLite stores of one database file in one process (an app factory
called twice, two Paste filters of one path, a job's store beside the
app's) are protected as one when the file is replaced.

Each store closed only its own connections to the old file before it
opened the new one: the other store's, still mapping the old file's
``-shm``, saw it cut back by the new file's set-up (SIGBUS in 10 runs of
10 of the traffic script in ``test_sqlite_live_faults.py`` with two
stores). The process now keeps one opening lock and one set of open
connections per file (``_sqliteshared``), for every store of it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest
from helpers import later
from sqlite_files import descriptors_open_on, idle_connections, replace_with_a_copy

from wsgisession.stores import SQLiteStore, _sqliteshared

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc"
)


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


@needs_proc
@pytest.mark.parametrize(
    "second_path", ["same", "symlinked-directory", "symlinked-file"]
)
def test_an_opener_of_the_new_file_closes_the_other_stores_connections(
    tmp_path: Path, second_path: str
) -> None:
    """Store B's idle threads keep connections to the file; it is replaced;
    store A's next save closes them before it opens the new file (before:
    all 4 left open). B reaches the file by the same path, through a
    symlink to its directory, or through a symlink to the file."""
    directory = tmp_path / "db"
    directory.mkdir(mode=0o700)
    path = directory / "sessions.sqlite3"
    other_path = {
        "same": path,
        "symlinked-directory": tmp_path / "link" / path.name,
        "symlinked-file": tmp_path / "alias.sqlite3",
    }[second_path]
    (tmp_path / "link").symlink_to(directory)
    (tmp_path / "alias.sqlite3").symlink_to(path)
    store_a, store_b = SQLiteStore(path, busy_timeout=1), SQLiteStore(other_path)
    store_a.create(store_a.generate_key(), b"payload", later())  # the file
    end_idle_threads = idle_connections(store_b, 4)
    try:
        old = _identity(path)
        assert descriptors_open_on(old) >= 4
        replace_with_a_copy(path)
        store_a.create(store_a.generate_key(), b"payload", later())
        assert descriptors_open_on(old) == 0
    finally:
        end_idle_threads()
        store_a.close()
        store_b.close()


@needs_proc
def test_a_stores_close_leaves_another_stores_connections_open(
    tmp_path: Path,
) -> None:
    """``close()`` is each store's own: the other store's threads keep their
    connections (and use them without reopening)."""
    path = tmp_path / "sessions.sqlite3"
    store_a, store_b = SQLiteStore(path), SQLiteStore(path)
    end_idle_threads = idle_connections(store_b, 3)
    try:
        store_a.create(store_a.generate_key(), b"payload", later())
        assert descriptors_open_on(_identity(path)) >= 4
        store_a.close()
        assert descriptors_open_on(_identity(path)) >= 3
    finally:
        end_idle_threads()
        store_b.close()


def test_stores_collected_leave_no_entry_behind(tmp_path: Path) -> None:
    """The process's entry for a file goes with the last connection to it:
    stores made and dropped (one per test, per app built) leave none."""
    paths = [tmp_path / f"sessions-{number}.sqlite3" for number in range(3)]
    stores = [SQLiteStore(path) for path in paths for _ in range(2)]
    for store in stores:
        store.create(store.generate_key(), b"payload", later())
    files = _sqliteshared._REGISTRIES[os.getpid()].files
    names = {key[2] for key in files}
    assert {path.name for path in paths} <= names
    for store in stores:
        store.close()
    del stores, store
    gc.collect()
    names = {key[2] for key in files}
    assert not {path.name for path in paths} & names


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_past_a_lock_its_parent_held(tmp_path: Path) -> None:
    """A thread of the parent held the file's opening lock as it forked (it
    never lets go in the child): the child has entries of its own, and its
    store opens the file at once rather than waiting forever. Another
    store's connection, which the child has not touched, keeps the parent's
    entry alive in the child."""
    path = tmp_path / "sessions.sqlite3"
    store, other_store = SQLiteStore(path), SQLiteStore(path)
    store.create(store.generate_key(), b"parent", later())
    other_store.create(other_store.generate_key(), b"parent", later())
    opening = _sqliteshared.shared_file(str(path)).opening
    with opening:
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 1
            try:
                store.create(store.generate_key(), b"child", later())
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 10
    while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child waited for its parent's opening lock")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(waited[1]) == 0
    store.close()
    other_store.close()


def test_threads_of_two_stores_open_one_at_a_time(tmp_path: Path) -> None:
    """Both stores' first connections wait for one opening lock: while it is
    held, neither store's thread opens the file."""
    path = tmp_path / "sessions.sqlite3"
    store_a, store_b = SQLiteStore(path), SQLiteStore(path)
    store_a.create(store_a.generate_key(), b"payload", later())  # the file
    store_a.close()  # none kept in the pool: each thread below opens one
    opened: list[str] = []

    def first_save(name: str, store: SQLiteStore) -> None:
        store.create(store.generate_key(), b"payload", later())
        opened.append(name)

    threads = [
        threading.Thread(target=first_save, args=(name, store))
        for name, store in (("a", store_a), ("b", store_b))
    ]
    shared = _sqliteshared.shared_file(str(path))  # kept: no connection keeps it
    with shared.opening:
        for thread in threads:
            thread.start()
        time.sleep(0.1)
        assert opened == []
    for thread in threads:
        thread.join(5)
    assert sorted(opened) == ["a", "b"]
    store_a.close()
    store_b.close()
