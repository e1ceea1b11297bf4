"""``sweep_expired(limit)`` of the memory, file and SQLite stores.

A sweep removes at most ``limit`` expired records and costs little however
many records there are; successive sweeps reach every expired record.
"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest
from helpers import FakeClock, later

from wsgisession.keys import storage_key
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore
from wsgisession.stores.base import Store


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "sessions")
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "sessions.sqlite3")
    return MemoryStore()


def fill(
    store: Store, clock: FakeClock, live: int, dead: int
) -> tuple[list[str], list[str]]:
    """``live`` records and ``dead`` ones that have just expired (by ``clock``)."""
    soon = later(10)
    dead_keys = [store.generate_key() for _ in range(dead)]
    for key in dead_keys:
        store.create(key, b"dead", soon)
    live_keys = [store.generate_key() for _ in range(live)]
    for key in live_keys:
        store.create(key, b"live", later())
    clock.advance(20)
    return live_keys, dead_keys


def test_sweeps_remove_at_most_limit_and_in_the_end_every_expired(
    store: Store, frozen_clock: FakeClock
) -> None:
    live, dead = fill(store, frozen_clock, live=40, dead=60)
    counts = []
    for _ in range(300):  # the file store walks 256 shards, a bounded step each
        count = store.sweep_expired(7)
        assert 0 <= count <= 7
        counts.append(count)
        if sum(counts) == len(dead):
            break
    assert sum(counts) == len(dead)
    assert store.clear_expired() == 0
    assert all(store.load(key) is not None for key in live)
    assert store.sweep_expired(100) == 0


def test_a_sweep_touches_only_expired_records(
    store: Store, frozen_clock: FakeClock
) -> None:
    live, _ = fill(store, frozen_clock, live=30, dead=0)
    assert store.sweep_expired(1000) == 0
    assert all(store.load(key) is not None for key in live)


def test_a_zero_limit_does_nothing(store: Store, frozen_clock: FakeClock) -> None:
    fill(store, frozen_clock, live=0, dead=5)
    assert store.sweep_expired(0) == 0
    assert store.clear_expired() == 5


def test_a_renewed_record_survives_the_sweep(
    store: Store, frozen_clock: FakeClock
) -> None:
    """A record rewritten with a later expiry is not swept by its old one."""
    _, dead = fill(store, frozen_clock, live=0, dead=3)
    store.update(dead[0], lambda current: (b"renewed", later()), None)
    assert store.sweep_expired(1000) == 2
    record = store.load(dead[0])
    assert record is not None and record.payload == b"renewed"


def test_file_sweeps_of_one_file_each_resume_and_reach_every_record(
    tmp_path: Path, frozen_clock: FakeClock
) -> None:
    """Each sweep reads at most ``limit`` headers and resumes where the last stopped."""
    store = FileStore(tmp_path / "sessions")
    _, dead = fill(store, frozen_clock, live=0, dead=40)
    shard = storage_key(dead[0])[:2]
    first = store.sweep_expired(1)
    assert first <= 1
    remaining = len(dead) - first
    swept = 0
    for _ in range(600):  # at most one file each: as many sweeps as files
        swept += store.sweep_expired(1)
        if swept == remaining:
            break
    assert swept == remaining
    assert not any(Path(store.path, shard).iterdir())


def test_file_sweep_removes_orphaned_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    key = store.generate_key()
    store.create(key, b"live", later())
    shard = Path(store.path, storage_key(key)[:2])
    orphan = shard / (".tmp-" + "0" * 64)
    orphan.write_bytes(b"half")
    an_hour_ago = later(-3600)
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    for _ in range(2):  # a round of all shards, wherever this process starts
        store.sweep_expired(1000)
    assert not orphan.exists()
    assert store.load(key) is not None


@pytest.mark.usefixtures("young_heap")  # only this test's objects are judged
def test_close_releases_everything_and_the_store_reopens(store: Store) -> None:
    """No ResourceWarning when a used store is closed and dropped."""
    key = store.generate_key()
    store.create(key, b"x", later())
    with store.lock(key, 1.0, 60.0):
        store.sweep_expired(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        store.close()
        gc.collect()
        record = store.load(key)  # reopens what it needs
        assert record is not None and record.payload == b"x"
        store.close()
        del store
        gc.collect()
