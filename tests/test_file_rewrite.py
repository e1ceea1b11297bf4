"""FileStore rewrites a small record in place, and readers, which take no
lock, never take a read that overlapped the write for a record."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import fake_clock, later, payload_of

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.stores import _fileformat, _filerecord
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


def test_a_record_of_format_1_is_replaced_by_one_in_format_2(
    store: FileStore,
) -> None:
    """Format 1 has no checksum: a reader could not tell a rewrite in
    progress from a record, so it is replaced by a rename, once."""
    key = store.generate_key()
    path = record_path(store, key)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"wss1 %r 3\nold" % later())
    inode = path.stat().st_ino
    assert payload_of(store, key) == b"old"
    merged: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        merged.append(current)
        return b"new", later()

    store.update(key, merge, None)
    assert merged == [b"old"]
    assert path.read_bytes().startswith(b"wss2 ")
    assert payload_of(store, key) == b"new"
    assert path.stat().st_ino != inode
    inode = path.stat().st_ino
    store.update(key, replace_with(b"newer"), None)
    assert path.stat().st_ino == inode


@pytest.mark.parametrize(
    "replace",
    [
        lambda path: path.write_bytes(b"damaged"),
        lambda path: os.link(path, path.with_name("snapshot")),  # cp -al
    ],
    ids=["damaged", "hard link"],
)
def test_a_damaged_or_linked_record_is_replaced_not_rewritten(
    store: FileStore, replace: Callable[[Path], None]
) -> None:
    key = store.generate_key()
    store.create(key, b"old", later())
    path = record_path(store, key)
    replace(path)
    before = path.read_bytes()
    inode = path.stat().st_ino
    store.update(key, replace_with(b"new"), None)
    assert payload_of(store, key) == b"new"
    assert path.stat().st_ino != inode
    for other in path.parent.iterdir():  # the other name keeps what it had
        if other != path:
            assert other.read_bytes() == before


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times each record read read the file (observed, not changed)."""
    calls = [0]
    read_whole = _fileformat.read_whole

    def counted(fd: int) -> bytes:
        calls[0] += 1
        return read_whole(fd)

    monkeypatch.setattr(_fileformat, "read_whole", counted)
    monkeypatch.setattr(_filerecord, "read_whole", counted)
    return calls


def test_a_damaged_record_is_read_once_more_under_the_lock(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that overlapped a rewrite is read again under the shard's
    lock, which its writer holds; one under the lock (where no rewrite
    runs) is read once, and so is a sweep's look, which a file changed
    within the minute passes over anyway."""
    key = store.generate_key()
    store.create(key, b"old", later())
    path = record_path(store, key)
    path.write_bytes(b"damaged")
    calls = count_reads(monkeypatch)
    for age in (0, 5, 61):
        past = time.time() - age
        os.utime(path, (past, past))
        calls[0] = 0
        assert store.load(key) is None
        assert calls == [2], age
    calls[0] = 0
    store.update(key, replace_with(b"new"), None)  # under the lock
    assert calls == [1]
    calls[0] = 0
    assert store.sweep_expired(100) == 0  # a live record now
    assert calls == [1]  # outside the lock, and no re-check under it


def test_damaged_files_age_by_the_stores_clock(store: FileStore) -> None:
    """How old a file that holds no record is, is judged by the clock the
    store runs on (which tests and apps may set), as for temporary files."""
    key = store.generate_key()
    store.create(key, b"old", later())
    record_path(store, key).write_bytes(b"damaged")  # changed just now
    assert store.clear_expired() == 0  # may be a new record being written
    with fake_clock(time.time() + 61):
        assert store.clear_expired() == 1


READ_ONLY_RECORD = """
import os, sys, time
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore
store = FileStore(sys.argv[1])
key = store.generate_key()
store.create(key, b"old", time.time() + 3600)
name = storage_key(key)
os.chmod(os.path.join(sys.argv[1], name[:2], name), 0o400)
store.update(key, lambda current: (current + b"+new", time.time() + 3600), None)
print(store.load(key).payload.decode())
"""


@pytest.mark.slow  # a subprocess without root's capabilities
def test_a_read_only_record_is_replaced(tmp_path: Path) -> None:
    """A record file restored without write permission is saved by a rename,
    as before records were rewritten in place. Root writes to any file: run
    without the capability that lets it."""
    command = [sys.executable, "-c", READ_ONLY_RECORD, str(tmp_path / "sessions")]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "old+new"


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


@pytest.mark.parametrize("reader", ["load", "listing", "revocation"])
def test_a_read_of_a_rewrite_held_up_waits_for_its_writer(
    store: FileStore, reader: str
) -> None:
    """A writer stopped in the middle of its rewrite (a busy machine) for
    longer than the re-reads: the reader reads once more when the shard's
    lock is free, and gets the record, not "no session"."""
    middleware = SessionMiddleware(lambda environ, start: [], store=store)
    session = middleware.open_session()
    session["n"] = 1
    session.bind_user("alice")
    session.save()
    key, handle = session.session_key, middleware.user_sessions("alice")[0].handle
    path, name = record_path(store, key), storage_key(key)
    whole, payload = path.read_bytes(), payload_of(store, key)
    started, done = threading.Event(), threading.Event()

    def stalled_writer() -> None:
        with store._locked(name[:2]):
            path.write_bytes(whole[:20])  # half written...
            started.set()
            time.sleep(0.06)  # ... five times longer than the re-reads' 11 ms
            path.write_bytes(whole)
            # Inside the lock: once it is released, the thread that waited
            # for it may run before this one runs again.
            done.set()

    writer = threading.Thread(target=stalled_writer)
    writer.start()
    started.wait()
    try:
        if reader == "load":
            assert payload_of(store, key) == payload
        elif reader == "listing":
            assert store.user_session_records("alice")[name].payload == payload
        else:  # keep the one being rewritten, revoke the others: none
            assert middleware.revoke_user_sessions("alice", keep=handle) == 0
            assert path.exists()
        assert done.is_set()  # the answer came after the rewrite ended
    finally:
        writer.join()


def test_create_over_a_taken_name_reads_it_once(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the shard's lock no rewrite runs: no pauses to read again."""
    key = store.generate_key()
    store.create(key, b"old", later())
    record_path(store, key).write_bytes(b"damaged just now")
    calls = count_reads(monkeypatch)
    assert store.create(key, b"new", later()) == key
    assert calls == [1]
    monkeypatch.undo()
    assert payload_of(store, key) == b"new"


def test_a_failed_close_after_a_rewrite_is_store_unavailable(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing is where a network file system may report a failed write."""
    key = store.generate_key()
    store.create(key, b"old", later())
    close = _filerecord.HeldRecord.close

    def failing(held: _filerecord.HeldRecord) -> None:
        close(held)
        raise OSError(errno.EIO, "close reported a failed write")

    monkeypatch.setattr(_filerecord.HeldRecord, "close", failing)
    with pytest.raises(StoreUnavailable, match="close reported a failed write"):
        store.update(key, replace_with(b"new"), None)
