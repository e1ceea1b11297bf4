"""The request lock (``Store.lock``) of every server-side store, one contract.

memcached, Redis, PostgreSQL and MariaDB run against the real servers of the fixtures.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sql_support import SQL_KINDS, sql_url

from wsgisession.errors import LockTimeout
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    SQLStore,
)
from wsgisession.stores.base import Store

KINDS = ["memory", "file", "sqlite", "memcached", "redis", *SQL_KINDS]


def store_argument(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What the store of ``kind`` is built from: a path or a server address."""
    if kind == "file":
        return str(tmp_path / "sessions")
    if kind == "sqlite":
        return str(tmp_path / "sessions.sqlite3")
    if kind == "memcached":
        return str(request.getfixturevalue("clean_memcached").address)
    if kind == "redis":
        return str(request.getfixturevalue("clean_redis").url)
    if kind in SQL_KINDS:
        return sql_url(kind, request, tmp_path)
    return ""


def build(kind: str, argument: str) -> Store:
    makers = {
        "memory": lambda: MemoryStore(),
        "file": lambda: FileStore(argument),
        "sqlite": lambda: SQLiteStore(argument),
        "memcached": lambda: MemcachedStore(argument),
        "redis": lambda: RedisStore(argument),
        **dict.fromkeys(SQL_KINDS, lambda: SQLStore(argument)),
    }
    return makers[kind]()


@pytest.fixture(params=KINDS)
def kind_and_argument(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, str]:
    return request.param, store_argument(request.param, request, tmp_path)


@pytest.fixture
def store(kind_and_argument: tuple[str, str]) -> Store:
    return build(*kind_and_argument)


def later(seconds: float = 600) -> float:
    return time.time() + seconds


def test_lock_excludes_a_second_holder(store: Store) -> None:
    key = generate_key()
    with store.lock(key, 1.0, 60.0):
        started = time.monotonic()
        with pytest.raises(LockTimeout), store.lock(key, 0.2, 60.0):
            pass  # pragma: no cover - never reached
        assert 0.2 <= time.monotonic() - started < 1.5
    with store.lock(key, 0.2, 60.0):
        pass  # free again


def test_another_sessions_lock_is_independent(store: Store) -> None:
    key = generate_key()
    other = next(k for k in iter(generate_key, None) if not _shares_slot(store, key, k))
    with store.lock(key, 1.0, 60.0), store.lock(other, 0.2, 60.0):
        pass


def _shares_slot(store: Store, key: str, other: str) -> bool:
    """The memory and file stores map ids onto a bounded pool of locks."""
    first, second = storage_key(key), storage_key(other)
    if isinstance(store, MemoryStore):
        return int(first[:8], 16) % 256 == int(second[:8], 16) % 256
    if isinstance(store, FileStore):
        return first[:3] == second[:3]
    return False


def test_lock_is_released_when_the_block_raises(store: Store) -> None:
    key = generate_key()
    with pytest.raises(RuntimeError), store.lock(key, 1.0, 60.0):
        raise RuntimeError("boom")
    with store.lock(key, 0.2, 60.0):
        pass


def test_lock_serialises_a_blind_read_modify_write(store: Store) -> None:
    """A merge that ignores the stored record: only the lock keeps it exact."""
    key = generate_key()
    store.create(key, b"0", later())

    def blind_increment() -> None:
        for _ in range(15):
            with store.lock(key, 10.0, 60.0):
                loaded = store.load(key)
                assert loaded is not None
                count = b"%d" % (int(loaded.payload) + 1)
                store.update(key, lambda current, c=count: (c, later()), loaded)

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(blind_increment) for _ in range(6)]
    for future in futures:
        future.result()
    record = store.load(key)
    assert record is not None and record.payload == b"90"


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_store_locks import build
    store = build(sys.argv[1], sys.argv[2])
    with store.lock(sys.argv[3], 5.0, 1.0):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("kind", ["file", "sqlite", "memcached", "redis", *SQL_KINDS])
def test_a_killed_holder_loses_its_lock(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    argument = store_argument(kind, request, tmp_path)
    store, key = build(kind, argument), generate_key()
    script = HOLDER.format(tests=str(Path(__file__).parent))
    holder = subprocess.Popen(
        [sys.executable, "-c", script, kind, argument, key],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        holder.kill()
        holder.wait(5)
        started = time.monotonic()
        with store.lock(key, 5.0, 60.0):
            waited = time.monotonic() - started
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
    print(f"{kind}: the lock of a killed holder was free after {waited:.2f} s")
    assert waited < 2.5  # a 1 s ttl (memcached counts whole seconds)
