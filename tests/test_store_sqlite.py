"""SQLiteStore against real database files in a temporary directory.

Only what this store does on its own: the store protocol is tested once, for
every store, in test_store_contract.py.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sqlite3
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import FakeClock, later, payload_of

from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.stores import sqlite as sqlite_module
from wsgisession.stores.base import Merge
from wsgisession.stores.sqlite import SQLiteStore, default_path


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run_threads(count: int, target: Callable[[int], object]) -> None:
    """Run ``target(i)`` in ``count`` threads at once; re-raise the first failure."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        for future in [pool.submit(target, i) for i in range(count)]:
            future.result()


def pooled_connection(store: SQLiteStore) -> sqlite3.Connection:
    """The connection a statement of ``store`` runs on now (put back idle)."""
    return store._run("look at the pool", lambda connection: connection, write=True)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "sessions.sqlite3")


def test_file_modes_and_schema(store: SQLiteStore) -> None:
    store.create(store.generate_key(), b"secret", later())
    for suffix in ["", "-wal", "-shm"]:
        assert mode(store.path + suffix) == 0o600
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = db.execute("PRAGMA index_list(wsgisession_sessions)").fetchall()
        # No index on expires_at: a save would have to move its entry.
        names = {row[1] for row in indexes if row[3] == "c"}  # made by CREATE INDEX
        assert names == {"wsgisession_sessions_bound_user"}
        sql = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table'"
        ).fetchone()
        assert "WITHOUT ROWID" in sql[0]


@pytest.mark.slow
def test_locked_database_raises_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3", busy_timeout=0.02)
    key = store.generate_key()
    store.create(key, b"data", later())
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for operation in [
            lambda: store.create(store.generate_key(), b"x", later()),
            lambda: store.update(key, lambda current: (b"x", later()), None),
            lambda: store.delete(key),
            store.clear_expired,
        ]:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                operation()
            assert time.monotonic() - started >= 0.015  # waited for busy_timeout
            assert store.path in str(info.value)
            assert info.value.store == repr(store)
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert payload_of(store, key) == b"data"  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.update(key, lambda current: (b"free again", later()), None)
    assert payload_of(store, key) == b"free again"


def test_a_lock_that_cannot_be_released_keeps_the_requests_own_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The release fails while another connection holds the database (for
    longer than the lock's timeout, which the release tries for): logged
    (the row expires after its ttl anyway), not raised over the request's
    own exception, as SQLStore and the networked stores do."""
    store = SQLiteStore(tmp_path / "db.sqlite3", busy_timeout=0.05)
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="wsgisession"),
            pytest.raises(ZeroDivisionError),
            store.lock(store.generate_key(), 0.05, 60.0),
        ):
            other.execute("BEGIN EXCLUSIVE")
            1 / 0  # noqa: B018 - the request's own failure
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [r for r in caplog.records if "could not release" in r.getMessage()]


def test_unreadable_database_raises_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    store = SQLiteStore(path)
    with pytest.raises(StoreUnavailable) as info:
        store.load(store.generate_key())
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_path_under_a_file_raises_store_unavailable(tmp_path: Path) -> None:
    # A regular file where a directory should be fails even for root, who
    # ignores permission bits.
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    store = SQLiteStore(blocker / "db.sqlite3")  # constructing does not touch disk
    with pytest.raises(StoreUnavailable) as info:
        store.create(store.generate_key(), b"x", later())
    assert str(blocker) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"start", later())
    parent_connection = pooled_connection(store)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = False
        try:
            store.update(key, appending(b"+child"), None)
            # The parent's is left alone, not closed (raising here if it
            # was): SQLite's locks on the file are the parent's.
            ok = (
                parent_connection.in_transaction is False
                and pooled_connection(store) is not parent_connection
            )
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pooled_connection(store) is parent_connection
    store.update(key, appending(b"+parent"), None)
    assert payload_of(store, key) == b"start+child+parent"


def appending(suffix: bytes) -> Merge:
    """A merge that appends ``suffix`` to the stored payload."""
    return lambda current: ((current or b"") + suffix, later())


@pytest.mark.parametrize(
    "shared",
    [
        pytest.param(True, id="one store"),
        pytest.param(False, id="a store each"),
    ],
)
@pytest.mark.slow  # 20 fresh databases, 8 threads each: a hunt for a rare race
def test_many_threads_open_a_fresh_database_at_once(
    tmp_path: Path, shared: bool
) -> None:
    """The WAL switch ignores busy_timeout: the first connections must not fail.

    Separate store objects stand for separate processes. Two connections
    switching to WAL at once make SQLite's deadlock check fail one of them
    without waiting: rare, so the test tries many fresh databases.
    """
    for attempt in range(20):
        open_all_at_once(tmp_path / f"fresh-{attempt}.sqlite3", shared)


def open_all_at_once(path: Path, shared: bool, count: int = 8) -> None:
    common = SQLiteStore(path)
    start = threading.Barrier(count)

    def first_use(i: int) -> None:
        store = common if shared else SQLiteStore(path)
        start.wait()
        store.create(store.generate_key(), b"x", later())

    run_threads(count, first_use)


def test_threads_share_the_pooled_connections(store: SQLiteStore) -> None:
    """A connection is held for a statement, not for a thread's life: threads
    one after another reuse one, and only as many open as run at once (under
    gevent, every greenlet counted as a thread: one connection each)."""
    connections: list[sqlite3.Connection] = []

    def connect(i: int) -> None:
        connections.append(pooled_connection(store))

    for _ in range(3):
        run_threads(1, connect)
    assert len({id(c) for c in connections}) == 1
    store.close()
    assert store.load(store.generate_key()) is None  # reopens after close()


def test_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    expected = tmp_path / f"wsgisession-{os.getuid()}" / "sessions.sqlite3"
    assert default_path() == str(expected)
    store = SQLiteStore()
    assert store.path == str(expected)
    assert not expected.parent.exists()  # the constructor touches nothing
    store.create(store.generate_key(), b"x", later())
    assert mode(expected.parent) == 0o700
    assert mode(expected) == 0o600


def test_default_path_refuses_a_directory_others_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    directory = Path(default_path()).parent
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(ConfigError):
        SQLiteStore().load(SQLiteStore().generate_key())


@pytest.mark.parametrize("path", [":memory:", ""])
def test_rejects_a_database_in_memory(path: str) -> None:
    with pytest.raises(ConfigError):
        SQLiteStore(path)


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), "5"])
def test_rejects_a_bad_busy_timeout(tmp_path: Path, timeout: object) -> None:
    with pytest.raises(ConfigError):
        SQLiteStore(tmp_path / "db", busy_timeout=timeout)  # type: ignore[arg-type]


def test_repr_shows_the_path(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    assert repr(SQLiteStore(path)) == f"SQLiteStore({str(path)!r})"


# -- a database file removed or replaced while the app runs ---------------------


def rows_in(path: str) -> set[bytes]:
    """The payloads in the database at ``path``, read from outside the store."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {
            row[0] for row in db.execute("SELECT payload FROM wsgisession_sessions")
        }


def saves_from_threads_holding_connections(
    store: SQLiteStore, between: Callable[[], None], count: int = 4
) -> list[bytes]:
    """Threads that each opened a connection save again after ``between()``."""
    opened, resumed = threading.Barrier(count + 1), threading.Barrier(count + 1)
    payloads = [b"after-%d" % i for i in range(count)]

    def worker(i: int) -> None:
        store.create(store.generate_key(), b"before-%d" % i, later())
        opened.wait(10)
        resumed.wait(10)
        store.create(store.generate_key(), payloads[i], later())
        key = store.generate_key()
        store.update(key, lambda current: (b"merged-%d" % i, later()), None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    opened.wait(10)
    between()
    resumed.wait(10)
    for thread in threads:
        thread.join(10)
    return payloads + [b"merged-%d" % i for i in range(count)]


@pytest.mark.parametrize("suffixes", [[""], ["", "-wal", "-shm"]], ids=["db", "all"])
def test_a_removed_database_is_recreated_and_no_write_is_lost(
    store: SQLiteStore, suffixes: list[str]
) -> None:
    store.create(store.generate_key(), b"main thread", later())

    def remove() -> None:
        for suffix in suffixes:
            os.unlink(store.path + suffix)

    written = saves_from_threads_holding_connections(store, remove)
    assert rows_in(store.path) == set(written)
    assert mode(store.path) == 0o600
    # A new thread, and the main thread whose connection is older still.
    run_threads(2, lambda i: store.create(store.generate_key(), b"new", later()))
    store.create(store.generate_key(), b"main again", later())
    assert rows_in(store.path) == {*written, b"new", b"main again"}


@pytest.mark.slow  # sleeps a second
def test_a_replaced_database_is_reopened(store: SQLiteStore, tmp_path: Path) -> None:
    key = store.generate_key()
    store.create(key, b"old file", later())
    replacement = tmp_path / "replacement.sqlite3"
    with contextlib.closing(sqlite3.connect(replacement)) as db:
        db.execute("CREATE TABLE unrelated (x)")  # another database, no sessions

    def replace() -> None:
        os.replace(replacement, store.path)
        for suffix in ["-wal", "-shm"]:
            os.unlink(store.path + suffix)

    written = saves_from_threads_holding_connections(store, replace)
    assert rows_in(store.path) == set(written)
    time.sleep(1.05)  # a read checks the file once a second at most
    assert store.load(key) is None
    assert store.create(key, b"new file", later()) == key


@pytest.mark.slow  # sleeps a second
def test_reads_notice_a_removed_database_within_a_second(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"gone soon", later())
    for suffix in ["", "-wal", "-shm"]:
        os.unlink(store.path + suffix)
    time.sleep(1.05)
    assert store.load(key) is None
    assert os.path.exists(store.path)


def test_parent_directory_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "app" / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    store.create(key, b"x", later())
    assert payload_of(store, key) == b"x"
    for directory in [path.parent, path.parent.parent, path.parent.parent.parent]:
        assert mode(directory) == 0o700


@pytest.mark.usefixtures("young_heap")  # only this test's objects are judged
def test_close_closes_every_threads_connection(store: SQLiteStore) -> None:
    opened, closed = threading.Barrier(4), threading.Barrier(4)
    connections: list[sqlite3.Connection] = []

    def worker(i: int) -> None:
        connections.append(pooled_connection(store))
        opened.wait(10)
        closed.wait(10)  # still alive while the main thread closes
        assert store.load(store.generate_key()) is None  # reopens

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    opened.wait(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        store.close()
        gc.collect()
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    closed.wait(10)
    for thread in threads:
        thread.join(10)
    assert store.load(store.generate_key()) is None


def test_sweeps_walk_the_key_from_a_random_start_and_go_round(
    store: SQLiteStore, frozen_clock: FakeClock
) -> None:
    """With no index on expires_at, each sweep reads the next ``10 * limit``
    keys: wherever a process starts, successive sweeps reach every expired
    row and leave every live one, and a full round removes nothing more."""
    dead = [store.generate_key() for _ in range(23)]
    for key in dead:
        store.create(key, b"dead", later(10))
    live = [store.generate_key() for _ in range(17)]
    for key in live:
        store.create(key, b"live", later())
    frozen_clock.advance(20)
    counts = [store.sweep_expired(5) for _ in range(8)]  # 40 rows: one round
    assert all(0 <= count <= 5 for count in counts)
    assert sum(counts) == len(dead)
    assert all(store.load(key) is not None for key in live)
    assert store.sweep_expired(1000) == 0


def test_clear_expired_deletes_a_window_of_keys_at_a_time(
    store: SQLiteStore, frozen_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_BATCH", 4)
    for _ in range(11):
        store.create(store.generate_key(), b"dead", later(10))
    kept = store.generate_key()
    store.create(kept, b"live", later())
    frozen_clock.advance(20)
    reports: list[tuple[int, int]] = []
    assert store.clear_expired(lambda done, total: reports.append((done, total))) == 11
    # 12 keys, 4 a window: three full windows, then an empty one ends the walk
    done = [count for count, _ in reports]
    assert len(reports) == 4 and all(total == 11 for _, total in reports)
    assert all(0 <= b - a <= 4 for a, b in zip([0, *done], done)) and done[-1] == 11
    assert store.load(kept) is not None


def test_a_forked_worker_starts_its_sweeps_at_a_key_of_its_own(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers forked from a master that made the store must not all sweep
    the same keys (short-lived ones would never get past them)."""
    store.sweep_expired(1)  # an empty table: the walk stays at its start
    inherited = store._swept_to
    monkeypatch.setattr(os, "getpid", lambda: -2)  # a child's pid after fork()
    store.sweep_expired(1)
    assert store._swept_to != inherited


def test_a_sweep_deletes_at_most_limit_and_goes_on_after_them(
    store: SQLiteStore, frozen_clock: FakeClock
) -> None:
    """A window holds more expired rows than ``limit``: the sweep stops at
    ``limit`` and the next goes on after the last it deleted."""
    for _ in range(12):
        store.create(store.generate_key(), b"dead", later(10))
    frozen_clock.advance(20)
    assert [store.sweep_expired(5) for _ in range(4)] == [5, 5, 2, 0]


@pytest.mark.slow
def test_close_during_a_transactional_save_waits_for_it(tmp_path: Path) -> None:
    """close() from another thread (a shutdown) while a save is in its
    ``BEGIN IMMEDIATE`` transaction waits for the transaction to end:
    closing a connection under a running statement crashed the process."""
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    key = store.generate_key()
    store.create(key, b"a", later())
    stale = store.load(key)
    store.update(key, lambda current: (b"b", later()), None)  # `stale` is stale now
    closer = threading.Thread(target=store.close)  # e.g. shutdown
    waited: list[bool] = []
    calls: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        calls.append(current)
        if len(calls) == 2:  # the first ran before the conditional UPDATE
            closer.start()
            closer.join(0.2)
            waited.append(closer.is_alive())
        return (current or b"") + b"c", later()

    store.update(key, merge, stale)  # the row changed: read-merge-write
    closer.join(5)
    assert waited == [True], "close() did not wait for the transaction"
    record = store.load(key)  # the thread reopens on next use
    assert record is not None and record.payload == b"bc"
    store.close()
