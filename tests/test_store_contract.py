"""The store protocol (``stores/base.py``) of every server-side store, tested once.

Each test runs against the memory, file, SQLite, memcached and Redis stores
(the last two on the real servers of conftest.py, each also as a pool of
three memcached servers and a three-master Redis Cluster), and the SQL
store on PostgreSQL, MariaDB and SQLite, through the protocol,
and checks the backing from outside through a :class:`View`. What only one
store does lives in its own ``test_store_<name>.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import (
    STORE_FACTORIES,
    FakeClock,
    build_store,
    increment,
    later,
    memcached_keys,
    payload_of,
    store_argument,
)
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from sql_support import SQL_KINDS, rows
from sqlalchemy import create_engine

from wsgisession import stores
from wsgisession.errors import SessionInterrupted, StoreUnavailable
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores.base import Merge, Record, now

SCALED = ["memcached-pool", "redis-cluster"]  # several servers
KINDS = list(STORE_FACTORIES)
LOCAL = ["memory", "file", "sqlite", *SQL_KINDS]  # clear_expired() does the expiring
NATIVE = ["memcached", "redis", *SCALED]  # the server expires records
OPTIMISTIC = ["sqlite", *NATIVE, *SQL_KINDS]  # save the loaded record if unchanged
SHARED = ["file", "sqlite", *NATIVE, *SQL_KINDS]  # one store for many processes
PREFIX = "wsgisession:"
PAYLOAD = bytes(range(256)) + b"\r\nEND\r\n" + b"x" * 100_000
_MISSHAPEN = ["", "x", "a" * 42, "a" * 44, "a" * 42 + "!", "a b" * 15, "a" * 5000]
_ODD = ["a" * 10_000, "é" * 43, "\x00", "\x00" * 43, "/" * 43, "../../etc/passwd"]
BAD_KEYS: list[object] = [*_MISSHAPEN, *_ODD, None, 42, b"a" * 43]


class View:
    """A store plus a look at its backing from outside the store."""

    def __init__(self, kind: str, argument: str, raw: Any = None) -> None:
        self.kind, self.argument, self.raw = kind, argument, raw
        self.store = build_store(kind, argument)

    def name_of(self, key: str) -> str:
        """The name the backing keeps the record of ``key`` under."""
        return storage_key(key)

    def records(self) -> dict[str, bytes]:
        """Everything the backing holds for sessions: name -> stored bytes."""
        assert isinstance(self.store, stores.MemoryStore)
        return {
            n: p + repr(at).encode() for n, (p, at, _) in self.store._records.items()
        }

    def dump(self) -> bytes:
        """Every byte the backing holds, names included."""
        return b"".join(name.encode() + data for name, data in self.records().items())

    def holds(self, key: str) -> bool:
        """Whether the backing keeps anything for ``key``, live or not."""
        return self.name_of(key) in self.records()


class FileView(View):
    def name_of(self, key: str) -> str:
        name = storage_key(key)
        return f"{name[:2]}/{name}"

    def records(self) -> dict[str, bytes]:  # temporary files included
        root = Path(self.argument)
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".locks" not in p.relative_to(root).parts
        }

    def dump(self) -> bytes:  # lock files and directories too
        paths = sorted(Path(self.argument).rglob("*"))
        content = b"".join(p.read_bytes() for p in paths if p.is_file())
        return "\n".join(map(str, paths)).encode() + content


class SQLiteView(View):
    def records(self) -> dict[str, bytes]:
        with contextlib.closing(sqlite3.connect(self.argument)) as db:
            rows = db.execute(
                "SELECT key, payload, expires_at FROM wsgisession_sessions"
            )
            return {key: payload + repr(at).encode() for key, payload, at in rows}

    def dump(self) -> bytes:  # the database and its WAL, as bytes on the disk
        files = list(Path(self.argument).parent.iterdir())
        assert {p.name for p in files} >= {"sessions.sqlite3", "sessions.sqlite3-wal"}
        return b"".join(p.read_bytes() for p in files)


class MemcachedView(View):
    def name_of(self, key: str) -> str:
        return PREFIX + storage_key(key)

    def records(self) -> dict[str, bytes]:
        names = self.stable_names()
        values = {name: self.raw.get(name) for name in names}
        return {name: value for name, value in values.items() if value is not None}

    def stable_names(self) -> set[str]:
        """The server's keys, from crawler dumps taken until two agree.

        The LRU crawler answers from a background walk: one dump can miss
        an item just written, or come back cut, under load.
        """
        return memcached_keys(self.raw)


class RedisView(MemcachedView):
    def records(self) -> dict[str, bytes]:
        return {name.decode(): self.raw.get(name) for name in self.raw.keys("*")}


class SQLView(View):
    def records(self) -> dict[str, bytes]:
        engine = create_engine(self.argument)
        try:
            return rows(engine)
        finally:
            engine.dispose()


class GroupView(View):
    """Several servers: what each holds (a record never on two of them)."""

    def __init__(self, kind: str, argument: str, views: list[View]) -> None:
        super().__init__(kind, argument)
        self.views = views

    def name_of(self, key: str) -> str:
        return self.views[0].name_of(key)

    def records(self) -> dict[str, bytes]:
        held = [view.records() for view in self.views]
        assert sum(map(len, held)) == len({name for part in held for name in part})
        return {name: data for part in held for name, data in part.items()}

    def dump(self) -> bytes:
        return b"".join(view.dump() for view in self.views)


def server_views(kind: str, request: pytest.FixtureRequest) -> Iterator[View]:
    """Views of the one server, or of each server of the group, of ``kind``."""
    group: Any = request.getfixturevalue(f"clean_{kind.replace('-', '_')}")
    raws: list[Any] = []
    try:
        if kind.startswith("memcached"):
            for server in getattr(group, "servers", [group]):
                raws.append(Client((server.host, server.port), timeout=5))
                yield MemcachedView(kind, server.address, raws[-1])
        else:
            for server in getattr(group, "nodes", [group]):
                raws.append(redis.Redis(host=server.host, port=server.port))
                yield RedisView(kind, server.url, raws[-1])
    finally:
        for raw in raws:
            raw.close()


LOCAL_VIEWS = {"memory": View, "file": FileView, "sqlite": SQLiteView}


@pytest.fixture(params=KINDS)
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[View]:
    kind: str = request.param
    if kind in SQL_KINDS:
        view = SQLView(kind, store_argument(kind, request, tmp_path))
        view.store.exists(generate_key())  # connected, tables checked: tests time
        yield view
        view.store.close()
        return
    views = None if kind in LOCAL_VIEWS else server_views(kind, request)
    if views is None:
        path = tmp_path / ("sessions.sqlite3" if kind == "sqlite" else "sessions")
        chosen = LOCAL_VIEWS[kind](kind, str(path))
    elif kind not in SCALED:
        chosen = next(views)
    else:
        group = request.getfixturevalue(f"clean_{kind.replace('-', '_')}")
        argument = group.url if kind == "redis-cluster" else group.spec
        chosen = GroupView(kind, argument, list(views))
    # Set up first (SQLite's schema, a cluster's map of slots): first use
    # must not eat into the timings of the tests.
    chosen.store.load(generate_key())
    yield chosen
    if views is not None:
        views.close()


def recording(seen: list[bytes | None], result: bytes) -> Merge:
    """A merge that notes what it was given and writes ``result``."""

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return result, later()

    return merge


# -- records -----------------------------------------------------------------


def test_round_trip(view: View) -> None:
    store, key, expires_at = view.store, generate_key(), later()
    store.delete(key)  # absent: not an error
    assert store.load(key) is None and not store.exists(key)
    assert store.create(key, PAYLOAD, expires_at) == key
    record = store.load(key)
    assert record is not None
    assert (record.payload, record.expires_at) == (PAYLOAD, expires_at)
    assert type(record.payload) is bytes
    assert store.exists(key) and view.holds(key)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        assert current == PAYLOAD
        return current + b"+second", expires_at + 60

    assert store.update(key, merge, record) == key
    again = store.load(key)
    assert again is not None
    assert (again.payload, again.expires_at) == (PAYLOAD + b"+second", expires_at + 60)
    if view.kind in NATIVE:  # a CAS id or a digest, new with every save
        assert record.version is not None and again.version != record.version
    store.delete(key)
    assert store.load(key) is None and not store.exists(key) and not view.holds(key)
    store.delete(key)


def test_create_refuses_a_live_key_and_takes_over_an_expired_one(view: View) -> None:
    store, key, stale = view.store, generate_key(), generate_key()
    assert store.create(key, b"live", later()) == key
    assert store.create(key, b"intruder", later()) is None
    assert payload_of(store, key) == b"live"
    assert store.create(stale, b"old", now() - 1) == stale
    assert store.load(stale) is None
    assert view.holds(stale) is (view.kind in LOCAL)  # servers store nothing dead
    assert store.create(stale, b"new", later()) == stale
    assert payload_of(store, stale) == b"new"


def test_an_expired_record_loads_as_none(view: View, frozen_clock: FakeClock) -> None:
    """The store judges by the record's expires_at, on the shared clock.

    memcached and Redis still hold the record then (their own expiry runs
    in real time), so only the local stores are asked to take its key over
    here; the test above checks that on every store.
    """
    store, key = view.store, generate_key()
    store.create(key, b"brief", now() + 5)
    assert store.load(key) is not None
    frozen_clock.advance(10)
    assert store.load(key) is None
    assert not store.exists(key)
    if view.kind in LOCAL:
        assert store.create(key, b"next", later()) == key
        assert payload_of(store, key) == b"next"


def test_exists_is_false_for_garbage_and_never_raises(view: View) -> None:
    store, key = view.store, generate_key()
    assert not store.exists(key)
    store.create(key, b"x", later())
    assert store.exists(key)
    for bad in [*BAD_KEYS, generate_key()]:
        assert store.exists(bad) is False, bad  # type: ignore[arg-type]


def test_raw_ids_never_reach_the_backing(view: View) -> None:
    store, keys = view.store, [generate_key() for _ in range(20)]
    for key in keys:
        store.create(key, b"payload", later())
        store.update(key, lambda current: (b"payload2", later()), store.load(key))
    assert sorted(view.records()) == sorted(view.name_of(key) for key in keys)
    dump = view.dump()
    assert storage_key(keys[0]).encode() in dump  # the check can see keys
    for key in keys:
        assert key.encode() not in dump


# -- update --------------------------------------------------------------------


def test_update_passes_the_stored_payload_whatever_was_loaded(view: View) -> None:
    store, key = view.store, generate_key()
    seen: list[bytes | None] = []
    store.create(key, b"stored", later())
    store.update(key, recording(seen, b"merged"), None)
    store.update(key, recording(seen, b"again"), Record(b"stale", later()))
    # SQLite tries any loaded payload first; the others need a version for that.
    tried = [b"stale"] if view.kind in ("sqlite", *SQL_KINDS) else []
    assert seen == [b"stored", *tried, b"merged"]
    assert payload_of(store, key) == b"again"


def test_update_of_a_missing_or_expired_record_passes_none(view: View) -> None:
    store, missing, expired = view.store, generate_key(), generate_key()
    store.create(expired, b"stale", now() - 1)
    for key in (missing, expired):
        seen: list[bytes | None] = []
        assert store.update(key, recording(seen, b"fresh"), None) == key
        assert seen == [None]
        assert payload_of(store, key) == b"fresh"


def test_update_of_a_vanished_record_asks_merge(view: View) -> None:
    store, key = view.store, generate_key()
    store.create(key, b"here", later())
    loaded = store.load(key)
    store.delete(key)

    def interrupted(current: bytes | None) -> tuple[bytes, float]:
        if current is None:
            raise SessionInterrupted()
        return current, later()

    with pytest.raises(SessionInterrupted):
        store.update(key, interrupted, loaded)
    assert store.load(key) is None and not view.holds(key)
    store.update(key, lambda current: (b"revived", later()), loaded)
    assert payload_of(store, key) == b"revived"


def test_a_merge_that_raises_writes_nothing(view: View) -> None:
    store, key, missing = view.store, generate_key(), generate_key()
    store.create(key, b"kept", later())
    before = view.records()

    def broken(current: bytes | None) -> tuple[bytes, float]:
        raise ValueError("unserializable")

    with pytest.raises(ValueError, match="unserializable"):
        store.update(key, broken, store.load(key))
    with pytest.raises(ValueError, match="unserializable"):
        store.update(missing, broken, None)
    assert payload_of(store, key) == b"kept"
    assert store.load(missing) is None
    assert view.records() == before  # no record, no temporary file
    store.update(key, lambda current: (b"after", later()), None)  # still works
    assert payload_of(store, key) == b"after"


def test_update_to_a_past_expiry_deletes(view: View) -> None:
    store, key = view.store, generate_key()
    store.create(key, b"doomed", later())
    store.update(key, lambda current: (b"gone", now() - 1), store.load(key))
    assert store.load(key) is None
    assert view.records() == {}


def test_a_stale_save_merges_with_the_newer_record(view: View) -> None:
    store, key = view.store, generate_key()
    seen: list[bytes | None] = []
    store.create(key, b"v1", later())
    mine, theirs = store.load(key), store.load(key)
    store.update(key, lambda current: (b"v2-theirs", later()), theirs)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return (current or b"") + b"+mine", later()

    store.update(key, merge, mine)
    # Optimistic stores try the loaded record first, then re-read.
    assert seen == ([b"v1"] if view.kind in OPTIMISTIC else []) + [b"v2-theirs"]
    assert payload_of(store, key) == b"v2-theirs+mine"


def test_a_stale_delete_is_merged_with_the_newer_record_too(view: View) -> None:
    """A merge that ends the record (a session moving to a new key takes
    what was saved meanwhile with it) sees the record as it is now."""
    store, key = view.store, generate_key()
    seen: list[bytes | None] = []
    store.create(key, b"v1", later())
    mine, theirs = store.load(key), store.load(key)
    store.update(key, lambda current: (b"v2-theirs", later()), theirs)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"gone", now() - 1

    store.update(key, merge, mine)
    assert seen[-1] == b"v2-theirs"
    assert store.load(key) is None


# -- clear_expired -------------------------------------------------------------


def test_clear_expired_counts_exactly(view: View) -> None:
    """memcached and Redis expire records themselves: they never clear any."""
    assert_clear_expired_counts(view, dead=7)


@pytest.mark.slow  # thousands of commits
@pytest.mark.parametrize("view", ["sqlite", *SQL_KINDS], indirect=True)
def test_clear_expired_counts_past_one_batch(view: View) -> None:
    """SQLite and SQL delete 1000 at a time: every batch is counted."""
    assert_clear_expired_counts(view, dead=2345)


def assert_clear_expired_counts(view: View, dead: int) -> None:
    """``dead`` expired records next to 5 live ones: clear_expired() counts them."""
    store, live = view.store, [generate_key() for _ in range(5)]
    for key in live:
        store.create(key, b"live", later())
    for _ in range(dead):
        store.create(generate_key(), b"dead", now() - 10)
    assert store.clear_expired() == (dead if view.kind in LOCAL else 0)
    assert store.clear_expired() == 0
    assert all(store.load(key) is not None for key in live)
    assert len(view.records()) == 5


# -- memcached (CAS) and Redis (script) ---------------------------------------


@pytest.mark.parametrize("view", NATIVE, indirect=True)
def test_endless_contention_gives_up(
    view: View, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"wsgisession.stores.{view.kind.split('-')[0]}")
    monkeypatch.setattr(module, "MAX_ATTEMPTS", 3)
    store, key = view.store, generate_key()
    calls: list[bytes | None] = []
    store.create(key, b"0", later())
    rival = build_store(view.kind, view.argument)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        calls.append(current)
        # Another request saves in between, every time.
        rival.update(key, lambda c: (str(len(calls)).encode(), later()), None)
        return b"mine", later()

    with pytest.raises(StoreUnavailable, match="contention"):
        store.update(key, merge, store.load(key))
    assert len(calls) == 3


@pytest.mark.parametrize("view", NATIVE, indirect=True)
def test_key_prefixes_separate_stores(view: View) -> None:
    one = build_store(view.kind, view.argument, key_prefix="one:")
    two = build_store(view.kind, view.argument, key_prefix="two:")
    key = generate_key()
    assert one.create(key, b"for one", later()) == key
    assert two.load(key) is None
    assert two.create(key, b"for two", later()) == key
    one.delete(key)
    assert one.load(key) is None
    assert payload_of(two, key) == b"for two"


# -- concurrency ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([f"t{i}" for i in range(8)], {f"t{i}": 40 for i in range(8)}),
        (["n"] * 8, {"n": 320}),
    ],
    ids=["own-fields", "same-field"],
)
@pytest.mark.parametrize(  # SQLite through SQLAlchemy: seconds of busy retries
    "view",
    [
        pytest.param(k, marks=pytest.mark.slow) if k == "sql-sqlite" else k
        for k in KINDS
    ],
    indirect=True,
)
def test_threads_on_one_session_lose_nothing(
    view: View, fields: list[str], expected: dict[str, int]
) -> None:
    """Exact even on one field: the merge runs inside the atomic section."""
    store, key = view.store, generate_key()
    store.create(key, b"{}", later())
    with ThreadPoolExecutor(max_workers=len(fields)) as pool:
        futures = [pool.submit(increment, store, key, [f], 40) for f in fields]
    for future in futures:
        future.result()
    assert json.loads(payload_of(store, key)) == expected


@pytest.mark.parametrize("view", SHARED, indirect=True)
@pytest.mark.slow  # forked processes
def test_forked_processes_on_one_session_lose_nothing(view: View) -> None:
    """Children inherit the store with the parent's connection open: each must
    use its own, and their saves on one session, all at once, lose nothing."""
    store, key = view.store, generate_key()
    store.create(key, b"{}", later())
    assert store.load(key) is not None  # the parent has a connection open now
    start, go = os.pipe()
    children = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.read(start, 1)  # start together so that the updates overlap
                increment(store, key, [f"p{i}", "total"], 200)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    os.write(go, b"go!")
    for _ in range(500):
        assert store.load(key) is not None
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    os.close(start)
    os.close(go)
    assert codes == [0, 0, 0]
    data = json.loads(payload_of(store, key))
    assert data == {"p0": 200, "p1": 200, "p2": 200, "total": 600}
