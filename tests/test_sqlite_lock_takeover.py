"""SQLiteStore's request lock after a release that failed.

Another connection holds SQLite's write lock (``BEGIN IMMEDIATE``) past
the release's wait, so the lock row stays in ``wsgisession_locks``. Every
request of the session then waited ``lock_timeout`` and failed with
LockTimeout until ``lock_ttl`` (60 s by default) had passed. The store now
keeps the token of such a row and takes it over at the session's next
taking in this process; other processes (another store on the file, a
forked child) still wait for ``lock_ttl``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import FakeClock
from interrupting import Interrupt, interrupted_at

from wsgisession.errors import LockTimeout
from wsgisession.keys import generate_key
from wsgisession.stores import SQLiteStore
from wsgisession.stores._keptlocks import TOKENS_KEPT, UNRELEASED_KEPT, KeptTokens

BUSY_TIMEOUT = 0.05  # SQLite's own wait for the write lock, per statement
LOCK_TIMEOUT = 0.1  # the lock's wait: its release gives up after about this
TTL = 60.0
LATER = float("inf")  # a lock's end that never comes


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection (a ``sqlite3`` shell, a backup) holds the write
    lock for the block."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def sqlite_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path, busy_timeout=BUSY_TIMEOUT)
    store.load(generate_key())  # file and tables made
    return store


def release_failing(store: SQLiteStore, key: str, ttl: float = TTL) -> None:
    """Take ``key``'s lock; its release meets a file another connection
    holds, and gives up (the row stays)."""
    lock = store.lock(key, LOCK_TIMEOUT, ttl)
    lock.__enter__()
    with write_lock_held(Path(store.path)):
        lock.__exit__(None, None, None)


def taking_time(store: SQLiteStore, key: str) -> float:
    """Seconds to take (then release) ``key``'s lock; LockTimeout if held."""
    began = time.monotonic()
    with store.lock(key, 0.5, TTL):
        return time.monotonic() - began


def lock_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM wsgisession_locks").fetchone()[0])


@pytest.mark.slow
def test_a_lock_whose_release_failed_is_taken_at_the_next_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store, other_process = sqlite_store(path), sqlite_store(path)
    key = generate_key()
    try:
        with caplog.at_level(logging.WARNING):
            release_failing(store, key)
        assert "could not release a session lock" in caplog.text
        assert lock_rows(path) == 1  # the release really failed
        with pytest.raises(LockTimeout), other_process.lock(key, LOCK_TIMEOUT, TTL):
            pass  # pragma: no cover - another process waits for the ttl
        assert taking_time(store, key) < 0.25  # LockTimeout after 0.5 s before
        assert lock_rows(path) == 0
        assert taking_time(other_process, key) < 0.25  # released for all
    finally:
        store.close()
        other_process.close()


def test_a_lock_released_while_its_file_was_away_is_taken_over(
    tmp_path: Path,
) -> None:
    """The database file moved away as the request ended, and its path could
    not be opened: the release failed at once (not busy), the row stayed in
    the file, which is back for the next request."""
    path = tmp_path / "sessions.sqlite3"
    store = sqlite_store(path)
    key = generate_key()
    try:
        with store.lock(key, LOCK_TIMEOUT, TTL):
            path.rename(tmp_path / "away.sqlite3")
            path.mkdir()  # no database can be opened at the path
        path.rmdir()
        (tmp_path / "away.sqlite3").rename(path)
        assert lock_rows(path) == 1
        assert taking_time(store, key) < 0.25  # LockTimeout before
    finally:
        store.close()


@pytest.mark.slow
def test_a_kept_token_takes_over_only_its_own_row(
    tmp_path: Path, frozen_clock: FakeClock
) -> None:
    """Past its ttl another process took the lock over: that lock is not
    this process's to take, whatever it kept."""
    path = tmp_path / "sessions.sqlite3"
    store, other_process = sqlite_store(path), sqlite_store(path)
    key = generate_key()
    try:
        release_failing(store, key, ttl=5)
        frozen_clock.advance(6)
        with (
            other_process.lock(key, LOCK_TIMEOUT, TTL),
            pytest.raises(LockTimeout),
            store.lock(key, LOCK_TIMEOUT, TTL),
        ):
            pass  # pragma: no cover - never reached
        assert taking_time(store, key) < 0.25
    finally:
        store.close()
        other_process.close()


def test_a_release_interrupted_while_the_file_is_busy_is_taken_over(
    tmp_path: Path,
) -> None:
    """An interrupt (a signal, a green timeout) as the release begins: the
    store drops the row once more, which the busy file refuses too."""
    path = tmp_path / "sessions.sqlite3"
    store = sqlite_store(path)
    key = generate_key()
    try:
        lock = store.lock(key, LOCK_TIMEOUT, TTL)
        lock.__enter__()
        with (
            write_lock_held(path),
            pytest.raises(Interrupt),
            interrupted_at(SQLiteStore._write),
        ):
            lock.__exit__(None, None, None)
        assert lock_rows(path) == 1
        assert taking_time(store, key) < 0.25  # LockTimeout before
    finally:
        store.close()


@pytest.mark.slow
def test_kept_tokens_outlive_close_and_a_replaced_file(tmp_path: Path) -> None:
    """``close()`` ends connections, not locks: the row is still in the file.
    A file put in its place (a copy holding the row) is taken over too."""
    path = tmp_path / "sessions.sqlite3"
    store = sqlite_store(path)
    first, second = generate_key(), generate_key()
    try:
        release_failing(store, first)
        store.close()
        assert taking_time(store, first) < 0.25
        release_failing(store, second)
        copy_path = tmp_path / "copy.sqlite3"
        with sqlite3.connect(path) as source, sqlite3.connect(copy_path) as copy:
            source.backup(copy)
        source.close()
        copy.close()
        os.replace(copy_path, path)
        assert lock_rows(path) == 1
        assert taking_time(store, second) < 0.25
        assert lock_rows(path) == 0
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_take_over_its_parents_locks(tmp_path: Path) -> None:
    """A child is another process: it waits for the ttl, as they all do;
    the parent still takes its lock over."""
    path = tmp_path / "sessions.sqlite3"
    store = sqlite_store(path)
    key = generate_key()
    try:
        release_failing(store, key)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by its exit code
            code = 1
            try:
                with store.lock(key, LOCK_TIMEOUT, TTL):
                    code = 2  # took its parent's lock
            except LockTimeout:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert taking_time(store, key) < 0.25
    finally:
        store.close()


def test_the_tokens_kept_per_lock_are_the_last_few() -> None:
    """A session whose lock keeps failing does not grow the process."""
    kept = KeptTokens[str]()
    for number in range(TOKENS_KEPT * 3):
        kept.keep("lock", f"token{number}", LATER)
    expected = tuple(f"token{n}" for n in range(TOKENS_KEPT * 2, TOKENS_KEPT * 3))
    assert kept.of("lock") == expected
    kept.forget("lock", expected[:2])
    assert kept.of("lock") == expected[2:]
    kept.forget("lock", expected)
    assert kept.of("lock") == ()
    assert len(kept) == 0


def test_the_locks_kept_are_bounded() -> None:
    kept = KeptTokens[str]()
    for number in range(UNRELEASED_KEPT + 10):
        kept.keep(f"lock{number}", "token", LATER)
    assert len(kept) == UNRELEASED_KEPT
    assert kept.of(f"lock{UNRELEASED_KEPT}") == ()  # full: not kept
    kept.keep("lock0", "later", LATER)  # a lock already kept still gets its token
    assert kept.of("lock0") == ("token", "later")


def test_a_store_keeps_nothing_when_its_releases_succeed(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path / "sessions.sqlite3")
    try:
        for _ in range(3):
            with store.lock(generate_key(), LOCK_TIMEOUT, TTL):
                pass
        assert len(store._unreleased) == 0
    finally:
        store.close()


def test_a_kept_token_goes_when_its_lock_expires(frozen_clock: FakeClock) -> None:
    """Past its lock's own end a token is worth nothing: anybody takes the
    lock over then. Kept, the tokens of sessions that never came back
    stayed for the life of the process."""
    kept = KeptTokens[str]()
    kept.keep("lock", "token", frozen_clock.now + TTL)
    assert kept.of("lock") == ("token",)
    frozen_clock.advance(TTL)
    assert kept.of("lock") == ()
    assert "lock" not in kept


def test_expired_locks_make_room_in_a_full_table(frozen_clock: FakeClock) -> None:
    """A process whose releases failed now and then over the days filled
    the table with the tokens of long-expired locks, then kept no more: a
    failed release locked its session for ``lock_ttl`` from then on."""
    kept = KeptTokens[str]()
    for number in range(UNRELEASED_KEPT):
        kept.keep(f"old{number}", "token", frozen_clock.now + TTL)
    frozen_clock.advance(TTL + 1)
    kept.keep("new", "token", frozen_clock.now + TTL)
    assert kept.of("new") == ("token",)
    assert len(kept) == 1  # the expired ones went


@pytest.mark.slow
def test_a_full_table_of_expired_locks_still_keeps_a_new_one(
    tmp_path: Path, frozen_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through a store, the table made small: the second failed
    release, after the first lock's ttl, is taken over at once (LockTimeout
    before: the table was full of the first, expired lock)."""
    import wsgisession.stores._keptlocks as keptlocks

    monkeypatch.setattr(keptlocks, "UNRELEASED_KEPT", 1)
    store = sqlite_store(tmp_path / "sessions.sqlite3")
    first, second = generate_key(), generate_key()
    try:
        release_failing(store, first)
        frozen_clock.advance(TTL + 1)  # the first lock's row has expired
        release_failing(store, second)
        assert lock_rows(tmp_path / "sessions.sqlite3") == 2
        assert taking_time(store, second) < 0.25
    finally:
        store.close()
