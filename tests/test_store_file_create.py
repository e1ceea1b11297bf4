"""FileStore's new records: made with O_EXCL and no lock, never over a live
record; a file still being written is left alone by sweeps for a minute."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from helpers import fake_clock, later, payload_of

from wsgisession.errors import StoreUnavailable
from wsgisession.stores import _filerecord
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore

#: Sweeps walk the store a part at a time: 300 of them, only in the full run.
SWEEP = pytest.param("sweep_expired", marks=pytest.mark.slow)


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path, name[:2], name)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "sessions")


def test_a_new_record_is_made_without_lock_or_temp_file(store: FileStore) -> None:
    key = store.generate_key()
    assert store.create(key, b"new", later()) == key
    assert payload_of(store, key) == b"new"
    assert stat.S_IMODE(os.stat(record_path(store, key)).st_mode) == 0o600
    assert list(Path(store.path).glob("*/.tmp-*")) == []
    assert not Path(store.path, ".locks").exists()  # no lock was taken
    assert store.create(key, b"other", later()) is None  # never replaces a live one
    assert payload_of(store, key) == b"new"


def test_create_takes_over_only_an_expired_record(store: FileStore) -> None:
    with fake_clock() as clock:
        key = store.generate_key()
        assert store.create(key, b"first", clock.now + 10) == key
        assert store.create(key, b"second", clock.now + 10) is None
        clock.advance(11)
        assert store.create(key, b"third", clock.now + 10) == key
    assert payload_of(store, key) == b"third"
    assert list(Path(store.path).glob("*/.tmp-*")) == []


def test_a_symlink_at_a_new_name_is_replaced_not_followed(
    store: FileStore, tmp_path: Path
) -> None:
    key = store.generate_key()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    path = record_path(store, key)
    path.parent.mkdir(mode=0o700)
    path.symlink_to(target)
    assert store.create(key, b"new", later()) == key
    assert not path.is_symlink() and payload_of(store, key) == b"new"
    assert target.read_bytes() == b"keep"


@pytest.mark.parametrize("removal", ["clear_expired", SWEEP])
def test_a_file_being_written_is_left_for_a_minute(
    store: FileStore, removal: str
) -> None:
    """An empty or partial file may be a new record whose one write has not
    ended: cleanup waits until it is a minute old, as for temporary files."""
    key = store.generate_key()
    store.create(key, b"new", later())
    path = record_path(store, key)
    path.write_bytes(path.read_bytes()[:7])  # as if its write had not ended

    def clean() -> int:
        if removal == "clear_expired":
            return store.clear_expired()
        return sum(store.sweep_expired(1000) for _ in range(300))

    assert store.load(key) is None
    assert clean() == 0 and path.exists()
    past = time.time() - 61
    os.utime(path, (past, past))
    assert clean() == 1 and not path.exists()


def test_a_new_file_removed_while_written_fails_the_create(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that took a file stuck for a minute before its write for a
    damaged one: the create raises rather than passing for saved."""
    write_whole = _filerecord.write_whole

    def stalled_then_swept(fd: int, data: bytes) -> None:
        os.unlink(record_path(store, key))  # what the sweep did meanwhile
        write_whole(fd, data)

    monkeypatch.setattr(_filerecord, "write_whole", stalled_then_swept)
    key = store.generate_key()
    with pytest.raises(StoreUnavailable, match="new session file removed"):
        store.create(key, b"new", later())
    monkeypatch.undo()
    assert store.load(key) is None


def test_a_store_directory_removed_after_its_check_is_made_again(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard's first record makes only the shard's directory, the store's
    having been checked just before; if that one went meanwhile (a temp
    cleaner), both are made again, mode 0700, and the record is saved."""
    check = store._directory.check

    def removed_after_check() -> None:
        check()
        shutil.rmtree(store.path)

    monkeypatch.setattr(store._directory, "check", removed_after_check)
    key = store.generate_key()
    assert store.create(key, b"new", later()) == key
    monkeypatch.undo()
    assert payload_of(store, key) == b"new"
    for directory in (Path(store.path), record_path(store, key).parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_new_file_whose_write_fails_is_removed(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[:10])
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(_filerecord, "write_whole", disk_full)
    key = store.generate_key()
    with pytest.raises(StoreUnavailable, match="no space left"):
        store.create(key, b"new", later())
    assert not record_path(store, key).exists()
