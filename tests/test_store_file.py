"""FileStore against real files in a temporary directory."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import wsgisession
from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.stores.base import Merge, now, storage_key
from wsgisession.stores.file import FileStore, default_path

LOGGER = "wsgisession.stores.file"
GARBAGE_KEYS = ["", "../../etc/passwd", "a" * 5000, "\x00", "é" * 43, "/" * 43]


def later(seconds: float = 3600.0) -> float:
    return now() + seconds


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path, name[:2], name)


def payload(store: FileStore, key: str) -> bytes:
    record = store.load(key)
    assert record is not None
    return record.payload


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def counting_merge(field: str) -> Merge:
    """A merge that adds one to ``field`` of a JSON object payload."""

    def merge(current: bytes | None) -> tuple[bytes, float]:
        data = json.loads(current) if current is not None else {}
        data[field] = data.get(field, 0) + 1
        return json.dumps(data).encode(), later()

    return merge


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "sessions")


def test_round_trip(store: FileStore) -> None:
    key = store.generate_key()
    expires_at = later()
    assert store.create(key, b"first", expires_at) == key
    record = store.load(key)
    assert record is not None
    assert (record.payload, record.expires_at) == (b"first", expires_at)
    assert store.exists(key)

    assert store.update(
        key, lambda current: ((current or b"") + b"+second", later(60)), record
    )
    assert payload(store, key) == b"first+second"

    store.delete(key)
    assert store.load(key) is None
    assert not store.exists(key)
    store.delete(key)  # deleting an absent record is not an error


def test_create_refuses_live_key_and_takes_over_expired(store: FileStore) -> None:
    key = store.generate_key()
    assert store.create(key, b"live", later()) == key
    assert store.create(key, b"intruder", later()) is None
    assert payload(store, key) == b"live"

    stale = store.generate_key()
    assert store.create(stale, b"old", now() - 1) == stale
    assert store.create(stale, b"new", later()) == stale
    assert payload(store, stale) == b"new"


def test_expired_record_loads_as_none(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", now() + 0.05)
    assert store.load(key) is not None
    time.sleep(0.1)
    assert store.load(key) is None
    assert not store.exists(key)


def test_update_writes_nothing_when_merge_raises(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"kept", later())

    def failing(current: bytes | None) -> tuple[bytes, float]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.update(key, failing, None)
    assert payload(store, key) == b"kept"

    missing = store.generate_key()
    with pytest.raises(RuntimeError):
        store.update(missing, failing, None)
    assert store.load(missing) is None
    assert not record_path(store, missing).exists()
    assert not [p for p in Path(store.path).rglob(".tmp-*")]


def test_update_with_past_expiry_deletes(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", later())
    store.update(key, lambda current: (b"gone", now() - 1), None)
    assert store.load(key) is None
    assert not record_path(store, key).exists()


def test_update_of_missing_record_passes_none(store: FileStore) -> None:
    key = store.generate_key()
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"fresh", later()

    assert store.update(key, merge, None) == key
    assert seen == [None]
    assert payload(store, key) == b"fresh"


def test_exists_is_false_for_garbage(store: FileStore) -> None:
    store.create(store.generate_key(), b"other", later())
    for garbage in [*GARBAGE_KEYS, store.generate_key()]:
        assert store.exists(garbage) is False


def test_clear_expired_counts_exactly(store: FileStore) -> None:
    live = [store.generate_key() for _ in range(5)]
    for key in live:
        store.create(key, b"live", later())
    for _ in range(7):
        store.create(store.generate_key(), b"dead", now() - 10)
    assert store.clear_expired() == 7
    assert store.clear_expired() == 0
    assert all(store.load(key) is not None for key in live)
    records = [p for p in Path(store.path).glob("??/*") if not p.name.startswith(".")]
    assert len(records) == 5


def test_clear_expired_removes_only_old_temp_files(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"live", later())
    shard = record_path(store, key).parent
    old, fresh = shard / ".tmp-0123456789abcdef", shard / ".tmp-fedcba9876543210"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.clear_expired() == 0  # temp files are not sessions
    assert not old.exists()
    assert fresh.exists()
    assert store.load(key) is not None


def test_raw_id_never_reaches_the_disk(store: FileStore) -> None:
    keys = [store.generate_key() for _ in range(20)]
    for key in keys:
        store.create(key, b"payload", later())
        store.update(key, lambda current: (b"payload2", later()), None)
    for path in Path(store.path).rglob("*"):
        content = path.read_bytes() if path.is_file() else b""
        for key in keys:
            assert key not in str(path)
            assert key.encode() not in content


def test_file_and_directory_modes(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"secret", later())
    assert mode(store.path) == 0o700
    assert mode(record_path(store, key)) == 0o600
    assert mode(record_path(store, key).parent) == 0o700
    locks = Path(store.path, ".locks")
    assert mode(locks) == 0o700
    assert [mode(p) for p in locks.iterdir()] == [0o600]


def test_lock_files_are_bounded(store: FileStore) -> None:
    for _ in range(2000):
        store.create(store.generate_key(), b"x", later())
    locks = list(Path(store.path, ".locks").iterdir())
    assert 0 < len(locks) <= 256
    assert all(len(p.name) == len("ab.lock") for p in locks)
    everywhere = [p for p in Path(store.path).rglob("*.lock")]
    assert sorted(everywhere) == sorted(locks)


def run_threads(count: int, target: Callable[[int], object]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_update_their_own_counters(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    run_threads(
        8,
        lambda i: [store.update(key, counting_merge(f"t{i}"), None) for _ in range(50)],
    )
    assert json.loads(payload(store, key)) == {f"t{i}": 50 for i in range(8)}


def test_threads_update_one_shared_counter(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    run_threads(
        8, lambda i: [store.update(key, counting_merge("n"), None) for _ in range(50)]
    )
    assert json.loads(payload(store, key)) == {"n": 400}


def test_separate_instances_exclude_each_other(tmp_path: Path) -> None:
    """Two stores on one path share no Python lock: the file lock must hold."""
    stores = [FileStore(tmp_path), FileStore(tmp_path)]
    key = stores[0].generate_key()
    stores[0].create(key, b"{}", later())
    run_threads(
        8,
        lambda i: [
            stores[i % 2].update(key, counting_merge("n"), None) for _ in range(50)
        ],
    )
    assert json.loads(payload(stores[1], key)) == {"n": 400}


WORKER = """
import json, sys, time
from wsgisession.stores.file import FileStore

store, key, field = FileStore(sys.argv[1]), sys.argv[2], sys.argv[3]

def merge(current):
    data = json.loads(current)
    data[field] = data.get(field, 0) + 1
    data["total"] = data.get("total", 0) + 1
    return json.dumps(data).encode(), time.time() + 600

print("ready", flush=True)
sys.stdin.readline()  # start together so that the updates overlap
for _ in range(int(sys.argv[4])):
    store.update(key, merge, None)
"""


def start_workers(
    script: str, args: list[str], count: int
) -> list[subprocess.Popen[str]]:
    """Start ``count`` copies of ``script`` and release them at the same moment."""
    package_root = os.path.dirname(os.path.dirname(wsgisession.__file__))
    path = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, f"p{i}", "200"],
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    return workers


def test_processes_update_one_session(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    workers = start_workers(WORKER, [store.path, key], 3)
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0, 0]
    data = json.loads(payload(store, key))
    assert data == {"p0": 200, "p1": 200, "p2": 200, "total": 600}


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-3],  # truncated payload
        lambda data: data[:10],  # truncated header
        lambda data: b"\x00\xffgarbage\n" * 4,
        lambda data: b"wss1 nan 4\nabcd",
        lambda data: b"",
    ],
)
def test_corrupt_file_loads_as_none_with_one_warning(
    store: FileStore,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[bytes], bytes],
) -> None:
    key = store.generate_key()
    store.create(key, b"0123456789", later())
    path = record_path(store, key)
    path.write_bytes(damage(path.read_bytes()))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert store.load(key) is None
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert repr(store) in warnings[0].getMessage()

    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"repaired", later()

    store.update(key, merge, None)
    assert seen == [None]
    assert payload(store, key) == b"repaired"


def test_clear_expired_removes_corrupt_records(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", later())
    record_path(store, key).write_bytes(b"garbage")
    assert store.clear_expired() == 1
    assert not record_path(store, key).exists()


def test_unusable_directory_raises_store_unavailable(tmp_path: Path) -> None:
    # Tests may run as root, which ignores permission bits (chmod 0500 would
    # not fail), so make the path unusable by putting a regular file in the way.
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    with pytest.raises(StoreUnavailable) as info:
        FileStore(blocker / "sessions")
    assert str(blocker) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)

    store = FileStore(tmp_path / "sessions")
    key = store.generate_key()
    os.rmdir(store.path)
    Path(store.path).write_bytes(b"")  # the directory is now a file
    for operation in [
        lambda: store.load(key),
        lambda: store.create(key, b"x", later()),
        lambda: store.update(key, lambda current: (b"x", later()), None),
        lambda: store.delete(key),
        store.clear_expired,
    ]:
        with pytest.raises(StoreUnavailable) as info:
            operation()
        assert store.path in str(info.value)
        assert info.value.store == repr(store)
        assert isinstance(info.value.__cause__, OSError)


def test_constructor_creates_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    store = FileStore(path)
    assert path.is_dir()
    assert mode(path) == 0o700
    assert repr(store) == f"FileStore({str(path)!r})"


def test_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert default_path() == str(tmp_path / "wsgisession")
    store = FileStore()
    assert store.path == default_path()
    assert mode(store.path) == 0o700


def test_default_path_refuses_a_directory_others_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    os.mkdir(tmp_path / "wsgisession")
    os.chmod(tmp_path / "wsgisession", 0o777)
    with pytest.raises(ConfigError):
        FileStore()


def test_file_lock_object_excludes_other_threads(store: FileStore) -> None:
    """The cached FileLock is thread-local: a second thread cannot share a hold."""
    import filelock

    _, shared = store._lock_for("ab")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with shared:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(filelock.Timeout):
            shared.acquire(timeout=0.1)
    finally:
        release.set()
        thread.join()
    with shared.acquire(timeout=1):
        assert shared.is_locked
