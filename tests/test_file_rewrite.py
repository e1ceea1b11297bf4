"""FileStore rewrites a small record in place, and readers, which take no
lock, never take a read that overlapped the write for a record."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import later, payload_of

from wsgisession.stores._fileformat import decode, encode
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path) / name[:2] / name


def replace_with(payload: bytes) -> Callable[[bytes | None], tuple[bytes, float]]:
    """A merge that saves ``payload`` whatever is stored."""
    return lambda current: (payload, later())


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "sessions")


def saved_once(store: FileStore, payload: bytes) -> tuple[str, Path, int]:
    """A new record saved once more with ``payload``: its key, file and
    the inode its file had before that save."""
    key = store.generate_key()
    store.create(key, b"x" * 1000, later())
    path = record_path(store, key)
    inode = path.stat().st_ino
    store.update(key, replace_with(payload), None)
    assert payload_of(store, key) == payload
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file
    return key, path, inode


def test_a_small_record_is_rewritten_in_the_same_file(store: FileStore) -> None:
    key, path, inode = saved_once(store, b"y" * 2000)
    assert path.stat().st_ino == inode
    store.update(key, replace_with(b"z" * 10), None)
    assert path.stat().st_ino == inode
    data = path.read_bytes()  # shorter: the old record's tail is cut off
    decoded = decode(data)
    assert decoded is not None and data == encode(b"z" * 10, decoded[1])
    assert payload_of(store, key) == b"z" * 10


def test_a_record_over_one_page_is_replaced_by_a_new_file(store: FileStore) -> None:
    _, path, inode = saved_once(store, b"y" * 5000)
    assert path.stat().st_ino != inode


def test_a_record_of_format_1_is_read_and_rewritten_in_format_2(
    store: FileStore,
) -> None:
    key = store.generate_key()
    path = record_path(store, key)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"wss1 %r 3\nold" % later())
    assert payload_of(store, key) == b"old"
    merged: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        merged.append(current)
        return b"new", later()

    store.update(key, merge, None)
    assert merged == [b"old"]
    assert path.read_bytes().startswith(b"wss2 ")
    assert payload_of(store, key) == b"new"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"n": 41, "user": "alice"}, {"n": 42, "user": "alice"}),  # same length
        ({"n": 9, "user": "alice"}, {"n": 10, "user": "bob"}),
    ],
)
def test_every_mix_of_two_records_fails_its_checksum(
    first: dict[str, object], second: dict[str, object]
) -> None:
    """A reader may copy the start of one write and the rest of another:
    only a whole record, maybe followed by another's tail, decodes."""
    old = encode(json.dumps(first).encode(), 1e9 + 0.25)
    new = encode(json.dumps(second).encode(), 1e9 + 0.5)
    mixes = 0
    for cut in range(len(old) + len(new)):
        for mixed in (old[:cut] + new[cut:], new[:cut] + old[cut:]):
            if mixed.startswith(old):
                assert decode(mixed) == decode(old)
            elif mixed.startswith(new):
                assert decode(mixed) == decode(new)
            else:
                assert decode(mixed) is None, (cut, mixed)
                mixes += 1
    assert mixes > len(old)


def test_a_read_that_does_not_check_out_is_read_again(store: FileStore) -> None:
    """A torn copy (as a reader may see during a rewrite) is read again
    after a short pause, and the record then loads."""
    key = store.generate_key()
    store.create(key, b"a" * 500, later())
    path = record_path(store, key)
    whole = path.read_bytes()
    path.write_bytes(whole[:300] + b"b" * (len(whole) - 300))
    fd = os.open(path, os.O_WRONLY)
    mend = threading.Timer(0.0005, os.pwrite, (fd, whole, 0))
    try:
        mend.start()
        assert payload_of(store, key) == b"a" * 500
    finally:
        mend.join()
        os.close(fd)


def _rewrite_many(path: str, stop_at: float) -> None:
    store = FileStore(path)
    key = "k" * 43
    payloads = [
        json.dumps({"n": n, "pad": "p" * (n % 7) * 90}).encode() for n in range(7)
    ]
    n = 0
    while time.monotonic() < stop_at:
        store.update(key, replace_with(payloads[n % 7]), None)
        n += 1


@pytest.mark.slow
def test_readers_never_see_a_rewrite_half_done(tmp_path: Path) -> None:
    """One process rewrites a record (sizes change, so the file grows and
    shrinks) as fast as it can while this one loads it: every load is one
    of the records written, never absent, never a mix."""
    store = FileStore(tmp_path / "sessions")
    key = "k" * 43
    payloads = {
        json.dumps({"n": n, "pad": "p" * (n % 7) * 90}).encode() for n in range(7)
    }
    store.create(key, next(iter(payloads)), later())
    context = multiprocessing.get_context("spawn")
    writer = context.Process(
        target=_rewrite_many, args=(str(tmp_path / "sessions"), time.monotonic() + 4)
    )
    writer.start()
    try:
        loads = 0
        inode = record_path(store, key).stat().st_ino
        while writer.is_alive() or loads < 1000:
            record = store.load(key)
            assert record is not None and record.payload in payloads
            loads += 1
    finally:
        writer.join()
    assert writer.exitcode == 0
    assert record_path(store, key).stat().st_ino == inode  # rewritten in place
    assert loads > 1000
