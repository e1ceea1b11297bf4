"""FileStore against real files in a temporary directory.

Only what this store does on its own: the store protocol is tested once, for
every store, in test_store_contract.py.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import FakeClock, increment, later, payload_of

from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.stores import _filesweep
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore, default_path

#: Sweeps walk the store a part at a time: 300 of them, only in the full run.
SWEEP = pytest.param("sweep_expired", marks=pytest.mark.slow)

LOGGER = "wsgisession.stores.file"


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path, name[:2], name)


def make_old(path: Path) -> None:
    """Set a file's last change a minute and more back."""
    past = time.time() - 61
    os.utime(path, (past, past))


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "sessions")


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


def test_file_and_directory_modes(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"secret", later())
    store.update(key, lambda current: (b"secret2", later()), None)  # takes a lock
    assert mode(store.path) == 0o700
    assert mode(record_path(store, key)) == 0o600
    assert mode(record_path(store, key).parent) == 0o700
    locks = Path(store.path, ".locks")
    assert mode(locks) == 0o700
    assert [mode(p) for p in locks.iterdir()] == [0o600]


@pytest.mark.slow  # 2000 records on disk
def test_lock_files_are_bounded(store: FileStore) -> None:
    for _ in range(2000):
        key = store.generate_key()
        store.create(key, b"x", later())
        store.update(key, lambda current: (b"y", later()), None)  # takes a lock
    locks = list(Path(store.path, ".locks").iterdir())
    assert 0 < len(locks) <= 256
    assert all(len(p.name) == len("ab.lock") for p in locks)
    everywhere = [p for p in Path(store.path).rglob("*.lock")]
    assert sorted(everywhere) == sorted(locks)


def test_separate_instances_exclude_each_other(tmp_path: Path) -> None:
    """Two stores on one path share no Python lock: the file lock must hold."""
    stores = [FileStore(tmp_path), FileStore(tmp_path)]
    key = stores[0].generate_key()
    stores[0].create(key, b"{}", later())
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(increment, stores[i % 2], key, ["n"], 50) for i in range(8)
        ]
    for future in futures:
        future.result()
    assert json.loads(payload_of(stores[1], key)) == {"n": 400}


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-3],  # truncated payload
        lambda data: data[:10],  # truncated header
        lambda data: b"\x00\xffgarbage\n" * 4,
        lambda data: b"wss1 nan 4\nabcd",
        lambda data: data.replace(b"23", b"32"),  # fails its checksum
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
    assert payload_of(store, key) == b"repaired"


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-3],  # the payload cut short, the header whole
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # fails its checksum
        lambda data: data[:10],  # the header cut short
    ],
)
@pytest.mark.parametrize("removal", ["clear_expired", SWEEP])
def test_a_record_that_can_never_load_is_removed_by_cleanup(
    store: FileStore, damage: Callable[[bytes], bytes], removal: str
) -> None:
    key = store.generate_key()
    store.create(key, b"0123456789", later())
    path = record_path(store, key)
    path.write_bytes(damage(path.read_bytes()))
    assert store.load(key) is None
    make_old(path)  # a younger one may be a new record still being written
    if removal == "clear_expired":
        assert store.clear_expired() == 1
    else:
        assert sum(store.sweep_expired(1000) for _ in range(300)) == 1
    assert not path.exists()


FAR_EXPIRY = 4102444800.0  # 2100-01-01: a header of fixed width


def payload_filling(file_size: int) -> bytes:
    """A payload whose record file (header included) is ``file_size`` bytes."""
    # + the length digits, a space, 8 digits of checksum and the newline
    header = len(f"wss2 {FAR_EXPIRY!r} ") + 10
    length = next(
        n for n in range(file_size - header - 10, file_size)
        if n + header + len(str(n)) == file_size
    )  # fmt: skip
    return (bytes(range(256)) * (length // 256 + 1))[:length]


@pytest.mark.parametrize("file_size", [65535, 65536, 65537, 200_000])
def test_records_around_one_read_load_whole(store: FileStore, file_size: int) -> None:
    """A record is read in one call when it fits, and in several when it does not."""
    key, payload = store.generate_key(), payload_filling(file_size)
    store.create(key, payload, FAR_EXPIRY)
    assert record_path(store, key).stat().st_size == file_size
    assert payload_of(store, key) == payload


@pytest.mark.parametrize("file_size", [1000, 65536, 200_000])
def test_bytes_after_a_record_are_ignored(store: FileStore, file_size: int) -> None:
    """A record rewritten shorter keeps the old tail until its file is
    truncated, a second system call that a crash may not reach."""
    key, payload = store.generate_key(), payload_filling(file_size)
    store.create(key, payload, FAR_EXPIRY)
    path = record_path(store, key)
    path.write_bytes(path.read_bytes() + b"trailing")
    assert payload_of(store, key) == payload


@pytest.mark.parametrize("file_size", [1000, 65536])
def test_bytes_after_a_record_of_format_1_make_it_corrupt(
    store: FileStore, file_size: int
) -> None:
    """Format 1 was never rewritten in place: a longer file is damaged."""
    key, payload = store.generate_key(), payload_filling(file_size)
    path = record_path(store, key)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(b"wss1 %r %d\n%s" % (FAR_EXPIRY, len(payload), payload))
    assert payload_of(store, key) == payload
    path.write_bytes(path.read_bytes() + b"trailing")
    assert store.load(key) is None


def test_clear_expired_removes_corrupt_records(store: FileStore) -> None:
    key = store.generate_key()
    store.create(key, b"data", later())
    record_path(store, key).write_bytes(b"garbage")
    make_old(record_path(store, key))
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
    assert default_path() == str(tmp_path / f"wsgisession-files-{os.getuid()}")
    store = FileStore()
    assert store.path == default_path()
    assert mode(store.path) == 0o700


def test_default_path_refuses_a_directory_others_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    os.mkdir(default_path())
    os.chmod(default_path(), 0o777)
    with pytest.raises(ConfigError):
        FileStore()


def planted(directory: Path) -> str:
    """An attacker's private directory holding a session they made up; its key."""
    key = "A" * 43
    FileStore(directory).create(key, b'{"user_id": "admin"}', time.time() + 600)
    return key


def test_a_symlink_is_refused_as_the_directory(tmp_path: Path) -> None:
    planted(tmp_path / "elsewhere")  # private, and this process's own: it passes
    (tmp_path / "sessions").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        FileStore(tmp_path / "sessions")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        FileStore(tmp_path / "dangling")


def test_a_directory_swapped_for_a_symlink_while_running_is_refused(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "sessions")
    key = planted(tmp_path / "elsewhere")
    os.rename(tmp_path / "sessions", tmp_path / "moved")
    (tmp_path / "sessions").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreUnavailable, match="symbolic link"):
        store.load(key)
    with pytest.raises(StoreUnavailable, match="symbolic link"):
        store.create("B" * 43, b"{}", time.time() + 600)
    assert not any((tmp_path / "elsewhere").glob("*/" + storage_key("B" * 43)))


def test_a_directory_made_again_by_another_user_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    key = "C" * 43
    store.create(key, b"{}", time.time() + 600)
    for path in sorted((tmp_path / "sessions").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tmp_path / "sessions").rmdir()  # a cleaner of temporary files
    os.mkdir(tmp_path / "sessions", 0o777)  # someone else is first to make it
    os.chmod(tmp_path / "sessions", 0o777)
    with pytest.raises(StoreUnavailable, match="mode 777"):
        store.load(key)


def test_a_directory_removed_while_running_is_made_again(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    for path in sorted((tmp_path / "sessions").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tmp_path / "sessions").rmdir()
    key = "D" * 43
    assert store.load(key) is None
    assert store.create(key, b"{}", time.time() + 600) == key
    assert mode(tmp_path / "sessions") == 0o700
    assert store.load(key) is not None


def test_shard_lock_excludes_other_threads(store: FileStore) -> None:
    """A second thread of the process cannot take a shard lock that is held."""
    import filelock

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        unlock = store._shard_locks.acquire("ab", 1.0)
        held.set()
        release.wait(5)
        unlock()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(filelock.Timeout):
            store._shard_locks.acquire("ab", 0.05)
    finally:
        release.set()
        thread.join()
    store._shard_locks.acquire("ab", 1.0)()


def test_a_replaced_lock_file_is_reopened(store: FileStore) -> None:
    """Locking an unlinked lock file would exclude nobody: the path is re-checked."""
    store._shard_locks.acquire("ab", 1.0)()
    lock_file = os.path.join(store.path, ".locks", "ab.lock")
    os.unlink(lock_file)
    store._shard_locks.acquire("ab", 1.0)()
    assert os.path.exists(lock_file), "the lock was taken on a file no one else sees"


# -- request locks: one file per held lock ------------------------------------


def request_lock_files(store: FileStore) -> list[Path]:
    directory = Path(store.path, ".locks", "requests")
    return sorted(directory.iterdir()) if directory.exists() else []


def test_request_lock_files_exist_only_while_held(store: FileStore) -> None:
    for _ in range(300):
        key = store.generate_key()
        with store.lock(key, 1.0, 60.0):
            held = request_lock_files(store)
            assert [p.name for p in held] == [storage_key(key)]
            assert mode(held[0]) == 0o600
    assert request_lock_files(store) == []


def test_stale_request_lock_files_are_swept(
    store: FileStore, frozen_clock: FakeClock
) -> None:
    """A crashed holder leaves its lock file; sweeps remove it once expired."""
    names = [storage_key(store.generate_key()) for _ in range(3)]
    for name in names:  # taken and never released, as by a killed process
        store._request_locks.acquire(name, 1.0, 5.0)
    live = storage_key(store.generate_key())
    store._request_locks.acquire(live, 1.0, 600.0)
    frozen_clock.advance(10)
    assert store.sweep_expired(1000) == 0  # lock files are not sessions
    assert [p.name for p in request_lock_files(store)] == [live]
    store._request_locks.acquire(names[0], 1.0, 5.0)
    frozen_clock.advance(10)
    store.clear_expired()
    assert [p.name for p in request_lock_files(store)] == [live]


def test_a_lock_that_cannot_be_released_keeps_the_requests_own_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The release waits for its shard's lock, which another process holds
    past ``lock_timeout``: logged (the lock file expires after its ttl), not
    raised over the request's own exception, as the other stores do."""
    store = FileStore(tmp_path / "sessions")
    store.lock_timeout = 0.05
    other = FileStore(tmp_path / "sessions")  # another process's descriptors
    key = store.generate_key()
    release = None
    try:
        with (
            caplog.at_level(logging.WARNING, logger="wsgisession"),
            pytest.raises(ZeroDivisionError),
            store.lock(key, 1.0, 60.0),
        ):
            release = other._shard_locks.acquire(storage_key(key)[:2], 1.0)
            1 / 0  # noqa: B018 - the request's own failure
    finally:
        if release is not None:
            release()
    assert [r for r in caplog.records if "could not release" in r.getMessage()]


# -- directory trust and symlinks -------------------------------------------------


def test_explicit_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError) as info:
        FileStore(shared)
    assert f"chmod 700 {shared}" in str(info.value)
    shared.chmod(0o770)
    with pytest.raises(ConfigError):
        FileStore(shared)
    shared.chmod(0o700)
    assert FileStore(shared).path == str(shared)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        FileStore(theirs)
    assert "uid 65534" in str(info.value)
    assert f"chown {os.getuid()} {theirs}" in str(info.value)


def test_missing_directory_is_created_private(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "new")
    assert mode(store.path) == 0o700


def plant_symlink(at: Path, tmp_path: Path) -> Path:
    """A symlink at ``at`` to a file outside the store; returns the target."""
    target = tmp_path / "victim.txt"
    target.write_bytes(b"precious")
    at.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    at.symlink_to(target)
    return target


def test_symlink_at_a_record_is_not_followed(
    store: FileStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = store.generate_key()
    path = record_path(store, key)
    target = plant_symlink(path, tmp_path)
    target.write_bytes(b"wss1 4102444800.0 5\nforge")  # a record, if followed
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert store.load(key) is None
    assert "symlink" in caplog.text
    assert store.create(key, b"mine", later()) == key
    assert target.read_bytes() == b"wss1 4102444800.0 5\nforge"
    assert not path.is_symlink() and payload_of(store, key) == b"mine"


def test_symlink_at_a_temp_name_is_not_followed(
    store: FileStore, tmp_path: Path
) -> None:
    key = store.generate_key()
    name = storage_key(key)
    target = plant_symlink(Path(store.path, name[:2], ".tmp-" + name), tmp_path)
    store.update(key, lambda current: (b"saved", later()), None)
    assert target.read_bytes() == b"precious"
    assert payload_of(store, key) == b"saved"
    assert not record_path(store, key).is_symlink()


def test_symlink_at_a_request_lock_is_not_followed(
    store: FileStore, tmp_path: Path
) -> None:
    key = store.generate_key()
    lock_file = Path(store.path, ".locks", "requests", storage_key(key))
    target = plant_symlink(lock_file, tmp_path)
    with store.lock(key, 1.0, 60.0):
        assert not lock_file.is_symlink()
    assert target.read_bytes() == b"precious"


def test_symlink_at_a_shard_lock_is_refused(store: FileStore, tmp_path: Path) -> None:
    key = store.generate_key()
    shard_lock = Path(store.path, ".locks", storage_key(key)[:2] + ".lock")
    assert store.create(key, b"x", later()) == key  # a new record takes no lock
    target = plant_symlink(shard_lock, tmp_path)
    with pytest.raises(StoreUnavailable):
        store.update(key, lambda current: (b"y", later()), None)
    with pytest.raises(StoreUnavailable):
        store.delete(key)
    assert target.read_bytes() == b"precious"
    assert payload_of(store, key) == b"x"


def test_close_releases_descriptors(store: FileStore) -> None:
    for _ in range(20):
        store.create(store.generate_key(), b"x", later())
    store.sweep_expired(5)  # leaves a directory iterator open
    before = len(os.listdir("/proc/self/fd"))
    store.close()
    assert len(os.listdir("/proc/self/fd")) < before
    key = store.generate_key()
    assert store.create(key, b"again", later()) == key  # usable after close


def test_a_forked_worker_starts_its_sweeps_at_a_shard_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers forked from a master that made the store must not all sweep
    the same shards (short-lived ones would never get past them)."""
    store = FileStore(tmp_path / "sessions")
    walk = store._walk
    inherited = walk._index
    monkeypatch.setattr(_filesweep.random, "randrange", lambda n: (inherited + 7) % n)
    monkeypatch.setattr(os, "getpid", lambda: -2)  # a child's pid after fork()
    store.sweep_expired(1)  # an empty store: one shard looked at
    assert walk._index in ((inherited + 7) % 256, (inherited + 8) % 256)
