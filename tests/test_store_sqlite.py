"""SQLiteStore against real database files in a temporary directory."""

from __future__ import annotations

import json
import os
import sqlite3
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
from wsgisession.stores.sqlite import SQLiteStore, default_path

GARBAGE_KEYS = ["", "../../etc/passwd", "a" * 5000, "\x00", "é" * 43, "/" * 43]


def later(seconds: float = 3600.0) -> float:
    return now() + seconds


def payload(store: SQLiteStore, key: str) -> bytes:
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


def run_threads(count: int, target: Callable[[int], object]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "sessions.sqlite3")


def test_round_trip(store: SQLiteStore) -> None:
    key = store.generate_key()
    expires_at = later()
    assert store.create(key, b"first", expires_at) == key
    record = store.load(key)
    assert record is not None
    assert (record.payload, record.expires_at) == (b"first", expires_at)
    assert type(record.payload) is bytes
    assert store.exists(key)

    merged = store.update(
        key, lambda current: ((current or b"") + b"+second", later(60)), record
    )
    assert merged == key
    assert payload(store, key) == b"first+second"

    store.delete(key)
    assert store.load(key) is None
    assert not store.exists(key)
    store.delete(key)  # deleting an absent record is not an error


def test_create_refuses_live_key_and_takes_over_expired(store: SQLiteStore) -> None:
    key = store.generate_key()
    assert store.create(key, b"live", later()) == key
    assert store.create(key, b"intruder", later()) is None
    assert payload(store, key) == b"live"

    stale = store.generate_key()
    assert store.create(stale, b"old", now() - 1) == stale
    assert store.create(stale, b"new", later()) == stale
    assert payload(store, stale) == b"new"


def test_expired_record_loads_as_none(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", now() + 0.05)
    assert store.load(key) is not None
    time.sleep(0.1)
    assert store.load(key) is None
    assert not store.exists(key)


def test_update_writes_nothing_when_merge_raises(store: SQLiteStore) -> None:
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
    # The transaction was rolled back: the connection takes new work.
    store.update(key, lambda current: (b"after", later()), None)
    assert payload(store, key) == b"after"


def test_update_with_past_expiry_deletes(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", later())
    store.update(key, lambda current: (b"gone", now() - 1), None)
    assert store.load(key) is None
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM wsgisession_sessions").fetchone() == (
            0,
        )


def test_update_of_missing_record_passes_none(store: SQLiteStore) -> None:
    key = store.generate_key()
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"fresh", later()

    assert store.update(key, merge, None) == key
    assert seen == [None]
    assert payload(store, key) == b"fresh"


def test_update_of_expired_record_passes_none(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"stale", now() - 1)
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"fresh", later()

    store.update(key, merge, None)
    assert seen == [None]
    assert payload(store, key) == b"fresh"


def test_exists_is_false_for_garbage(store: SQLiteStore) -> None:
    store.create(store.generate_key(), b"other", later())
    for garbage in [*GARBAGE_KEYS, store.generate_key()]:
        assert store.exists(garbage) is False


def test_clear_expired_counts_exactly(store: SQLiteStore) -> None:
    live = [store.generate_key() for _ in range(5)]
    for key in live:
        store.create(key, b"live", later())
    for _ in range(2345):  # more than one batch of 1000
        store.create(store.generate_key(), b"dead", now() - 10)
    assert store.clear_expired() == 2345
    assert store.clear_expired() == 0
    assert all(store.load(key) is not None for key in live)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM wsgisession_sessions").fetchone() == (
            5,
        )


def test_raw_id_never_reaches_the_disk(store: SQLiteStore) -> None:
    keys = [store.generate_key() for _ in range(20)]
    for key in keys:
        store.create(key, b"payload", later())
        store.update(key, lambda current: (b"payload2", later()), None)
    files = list(Path(store.path).parent.iterdir())
    assert {p.name for p in files} >= {"sessions.sqlite3", "sessions.sqlite3-wal"}
    content = b"".join(p.read_bytes() for p in files)
    assert storage_key(keys[0]).encode() in content  # the check can see keys
    for key in keys:
        assert key.encode() not in content


def test_file_modes_and_schema(store: SQLiteStore) -> None:
    store.create(store.generate_key(), b"secret", later())
    for suffix in ["", "-wal", "-shm"]:
        assert mode(store.path + suffix) == 0o600
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = db.execute("PRAGMA index_list(wsgisession_sessions)").fetchall()
        assert "wsgisession_sessions_expires_at" in {row[1] for row in indexes}
        sql = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table'"
        ).fetchone()
        assert "WITHOUT ROWID" in sql[0]


def test_threads_update_their_own_counters(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    run_threads(
        8,
        lambda i: [store.update(key, counting_merge(f"t{i}"), None) for _ in range(50)],
    )
    assert json.loads(payload(store, key)) == {f"t{i}": 50 for i in range(8)}


def test_threads_update_one_shared_counter(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    run_threads(
        8, lambda i: [store.update(key, counting_merge("n"), None) for _ in range(50)]
    )
    assert json.loads(payload(store, key)) == {"n": 400}


WORKER = """
import json, sys, time
from wsgisession.stores.sqlite import SQLiteStore

store, key, field = SQLiteStore(sys.argv[1], busy_timeout=30), sys.argv[2], sys.argv[3]

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


def test_processes_update_one_session(store: SQLiteStore) -> None:
    key = store.generate_key()
    store.create(key, b"{}", later())
    package_root = os.path.dirname(os.path.dirname(wsgisession.__file__))
    path = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store.path, key, f"p{i}", "200"],
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0, 0]
    data = json.loads(payload(store, key))
    assert data == {"p0": 200, "p1": 200, "p2": 200, "total": 600}


def test_locked_database_raises_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3", busy_timeout=0.2)
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
            assert time.monotonic() - started >= 0.15
            assert store.path in str(info.value)
            assert info.value.store == repr(store)
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert payload(store, key) == b"data"  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.update(key, lambda current: (b"free again", later()), None)
    assert payload(store, key) == b"free again"


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
    store.create(key, b"{}", later())
    parent_connection = store._connection()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = False
        try:
            store.update(key, counting_merge("child"), None)
            ok = store._connection() is not parent_connection
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._connection() is parent_connection
    store.update(key, counting_merge("parent"), None)
    assert json.loads(payload(store, key)) == {"child": 1, "parent": 1}


def test_each_thread_has_its_own_connection(store: SQLiteStore) -> None:
    connections: list[sqlite3.Connection] = []
    run_threads(3, lambda i: connections.append(store._connection()))
    assert len({id(c) for c in connections}) == 3
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
