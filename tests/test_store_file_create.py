"""FileStore's new records: linked whole where the system allows it, renamed
into place under the shard's lock elsewhere; never over a live record."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import fake_clock, later, payload_of

from wsgisession.stores._filelink import Linked, link_new_file, linking_available
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path, name[:2], name)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "sessions")


def test_a_new_record_is_linked_whole_without_lock_or_temp_file(
    store: FileStore,
) -> None:
    if not store._link_new:
        pytest.skip("this system cannot link anonymous files (no O_TMPFILE)")
    key = store.generate_key()
    assert store.create(key, b"new", later()) == key
    assert payload_of(store, key) == b"new"
    assert stat.S_IMODE(os.stat(record_path(store, key)).st_mode) == 0o600
    assert list(Path(store.path).glob("*/.tmp-*")) == []
    assert not Path(store.path, ".locks").exists()  # no lock was taken
    assert store.create(key, b"other", later()) is None  # never replaces a live one
    assert payload_of(store, key) == b"new"


@pytest.mark.parametrize("linking", [True, False])
def test_create_takes_over_only_an_expired_record(
    store: FileStore, linking: bool
) -> None:
    store._link_new = linking and store._link_new
    with fake_clock() as clock:
        key = store.generate_key()
        assert store.create(key, b"first", clock.now + 10) == key
        assert store.create(key, b"second", clock.now + 10) is None
        clock.advance(11)
        assert store.create(key, b"third", clock.now + 10) == key
    assert payload_of(store, key) == b"third"
    assert list(Path(store.path).glob("*/.tmp-*")) == []


def test_without_linking_a_new_record_is_renamed_into_place(
    store: FileStore,
) -> None:
    store._link_new = False  # as on a system without O_TMPFILE
    keys = [store.generate_key() for _ in range(20)]
    for key in keys:
        assert store.create(key, b"x", later()) == key
    assert all(payload_of(store, key) == b"x" for key in keys)
    assert Path(store.path, ".locks").is_dir()  # created under the shard lock
    assert list(Path(store.path).glob("*/.tmp-*")) == []


def test_link_new_file_creates_whole_files_and_never_replaces(tmp_path: Path) -> None:
    if not linking_available():
        pytest.skip("this system cannot link anonymous files (no O_TMPFILE)")
    target = tmp_path / "record"
    assert link_new_file(str(tmp_path), str(target), b"first") is Linked.CREATED
    assert link_new_file(str(tmp_path), str(target), b"second") is Linked.TAKEN
    assert target.read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["record"]  # nothing else left behind
    with pytest.raises(FileNotFoundError):
        link_new_file(str(tmp_path / "missing"), str(tmp_path / "missing/x"), b"")
