"""MemcachedStore against a real memcached (see conftest.py)."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import pytest
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]
from servers import ServerProcess

import wsgisession.stores.memcached as memcached_module
from wsgisession.errors import (
    ConfigError,
    SessionInterrupted,
    StoreUnavailable,
)
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores.base import Record
from wsgisession.stores.memcached import (
    RELATIVE_EXPIRE_LIMIT,
    MemcachedStore,
    memcached_expire,
)

DAY = 24 * 3600


@pytest.fixture
def store(clean_memcached: ServerProcess) -> MemcachedStore:
    return MemcachedStore(clean_memcached.address)


@pytest.fixture
def raw(clean_memcached: ServerProcess) -> Iterator[Client]:
    client = Client((clean_memcached.host, clean_memcached.port), timeout=5)
    yield client
    client.close()


def later(seconds: float = 600) -> float:
    return time.time() + seconds


def ttl_of(raw: Client, name: str) -> int | None:
    """memcached's remaining TTL of an item (meta get), None if absent."""
    reply = raw.raw_command(b"mg " + name.encode() + b" t", b"\r\n")
    if reply.startswith(b"EN"):
        return None
    return int(reply.split(b" t")[1])


def item_names(raw: Client) -> list[str]:
    dump = raw.raw_command(b"lru_crawler metadump all", b"END\r\n")
    return [
        unquote(line.split(b" ")[0][4:].decode())
        for line in dump.splitlines()
        if line.startswith(b"key=")
    ]


def counts(raw: Client) -> dict[str, int]:
    stats = raw.stats()
    names = ("cmd_get", "cmd_set", "cas_hits", "cas_misses", "delete_hits")
    return {name: int(stats[name.encode()]) for name in names}


# -- the expiry arithmetic -------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (0.2, 1),
        (1.0, 1),
        (1.5, 2),
        (59.999, 60),
        (RELATIVE_EXPIRE_LIMIT, RELATIVE_EXPIRE_LIMIT),
    ],
)
def test_expire_is_seconds_left_rounded_up(remaining: float, expected: int) -> None:
    assert memcached_expire(1_700_000_000.0 + remaining, 1_700_000_000.0) == expected


def test_expire_beyond_30_days_is_an_absolute_unix_time() -> None:
    moment = 1_700_000_000.0
    expires_at = moment + RELATIVE_EXPIRE_LIMIT + 0.5
    assert memcached_expire(expires_at, moment) == math.ceil(expires_at)
    assert memcached_expire(moment + 400 * DAY, moment) == math.ceil(moment + 400 * DAY)


@pytest.mark.parametrize("expires_at", [1_699_999_999.0, 1_700_000_000.0, math.nan])
def test_expire_of_a_past_record_is_none_never_zero(expires_at: float) -> None:
    assert memcached_expire(expires_at, 1_700_000_000.0) is None


def test_expire_is_capped_at_32_bits() -> None:
    assert memcached_expire(math.inf, 1_700_000_000.0) == 2**31 - 1


# -- construction ----------------------------------------------------------


def test_constructor_does_not_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    store = MemcachedStore(f"127.0.0.1:{port}")
    assert repr(store) == (
        f"MemcachedStore(servers=['127.0.0.1:{port}'], key_prefix='wsgisession:')"
    )
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        store.load(generate_key())


def test_servers_as_string_or_list() -> None:
    assert "['a:1', 'b:2']" in repr(MemcachedStore(" a:1\n b:2 "))
    assert "['a:1', 'b:2']" in repr(MemcachedStore(["a:1", "b:2"]))
    assert "['unix:/run/mc.sock']" in repr(MemcachedStore("unix:/run/mc.sock"))
    for fine in ("localhost", "mc-1.example.com:11211", "[::1]:11211", "10.0.0.1"):
        MemcachedStore(fine)


@pytest.mark.parametrize(
    "servers",
    [
        "",
        "  ",
        [],
        ["a:1", "a:1"],
        "a:notaport",
        "a:70000",
        "a:0",
        "a:",
        "not-a-valid-value-!!",
        ["a b:1"],
        "[::1]x:1",
        [b"a:1"],
    ],
)
def test_bad_servers_are_config_errors(servers: object) -> None:
    with pytest.raises(ConfigError):
        MemcachedStore(servers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "prefix", ["with space", "tab\t", "new\nline", "é:", "\x00", "x" * 182, b"x"]
)
def test_bad_key_prefix_is_a_config_error(prefix: object) -> None:
    with pytest.raises(ConfigError):
        MemcachedStore("127.0.0.1:11211", key_prefix=prefix)  # type: ignore[arg-type]


def test_longest_key_prefix_makes_a_valid_key(
    clean_memcached: ServerProcess,
) -> None:
    store = MemcachedStore(clean_memcached.address, key_prefix="p" * 181)
    key = generate_key()
    assert store.create(key, b"data", later()) == key
    assert store.load(key) is not None


@pytest.mark.parametrize("timeout", [0, -1, "1", None, True])
def test_bad_timeouts_are_config_errors(timeout: object) -> None:
    with pytest.raises(ConfigError):
        MemcachedStore("a:1", timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MemcachedStore("a:1", connect_timeout=timeout)  # type: ignore[arg-type]


# -- records ---------------------------------------------------------------


def test_round_trip(store: MemcachedStore) -> None:
    key = generate_key()
    payload = bytes(range(256)) + b"\r\nEND\r\n" + b"x" * 100_000
    expires_at = later()
    assert store.create(key, payload, expires_at) == key
    record = store.load(key)
    assert record is not None
    assert record.payload == payload
    assert record.expires_at == expires_at
    assert record.version is not None

    def merge(current: bytes | None) -> tuple[bytes, float]:
        assert current == payload
        return b"second", expires_at + 60

    assert store.update(key, merge, record) == key
    again = store.load(key)
    assert again is not None
    assert (again.payload, again.expires_at) == (b"second", expires_at + 60)
    assert again.version != record.version


def test_load_of_an_unknown_key_is_none(store: MemcachedStore) -> None:
    assert store.load(generate_key()) is None


def test_create_refuses_a_live_key(store: MemcachedStore) -> None:
    key = generate_key()
    assert store.create(key, b"first", later()) == key
    assert store.create(key, b"second", later()) is None
    record = store.load(key)
    assert record is not None and record.payload == b"first"


def test_create_replaces_a_record_expired_by_its_header(
    store: MemcachedStore, raw: Client
) -> None:
    key = generate_key()
    # Expired for the store, still held by memcached (its TTL is whole seconds).
    dead = struct.pack(">Bd", 1, time.time() - 1) + b"old"
    raw.set(store._name(key), dead, expire=60, noreply=False)
    assert store.load(key) is None
    assert store.create(key, b"new", later()) == key
    record = store.load(key)
    assert record is not None and record.payload == b"new"


def test_corrupt_record_loads_as_none_with_one_warning(
    store: MemcachedStore, raw: Client, caplog: pytest.LogCaptureFixture
) -> None:
    key = generate_key()
    raw.set(store._name(key), b"garbage", expire=60, noreply=False)
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        assert store.load(key) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "MemcachedStore" in warnings[0].getMessage()
    assert key not in warnings[0].getMessage()
    assert store.create(key, b"fresh", later()) == key  # a corrupt item is dead


def test_record_expires(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    store.create(key, b"brief", later(1))
    assert store.load(key) is not None
    time.sleep(1.2)
    assert store.load(key) is None
    assert not store.exists(key)


def test_ttl_is_the_time_left(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    store.create(key, b"soon", later(5))
    assert ttl_of(raw, store._name(key)) in (4, 5)


def test_record_beyond_30_days(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    expires_at = later(40 * DAY)
    store.create(key, b"long", expires_at)
    record = store.load(key)
    assert record is not None and record.expires_at == expires_at
    ttl = ttl_of(raw, store._name(key))
    assert ttl is not None and abs(ttl - 40 * DAY) <= 2


def test_record_just_under_30_days_uses_a_relative_ttl(
    store: MemcachedStore, raw: Client
) -> None:
    key = generate_key()
    store.create(key, b"month", later(29 * DAY))
    ttl = ttl_of(raw, store._name(key))
    assert ttl is not None and abs(ttl - 29 * DAY) <= 2


def test_update_to_a_past_expiry_deletes(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    store.create(key, b"doomed", later())
    store.update(key, lambda current: (b"gone", time.time() - 1), store.load(key))
    assert store.load(key) is None
    assert raw.get(store._name(key)) is None


def test_create_with_a_past_expiry_stores_nothing(
    store: MemcachedStore, raw: Client
) -> None:
    key = generate_key()
    assert store.create(key, b"stillborn", time.time() - 1) == key
    assert raw.get(store._name(key)) is None


def test_update_without_a_loaded_record_reads_first(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"stored", later())
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"merged", later()

    store.update(key, merge, None)
    store.update(key, merge, Record(b"stale", later()))  # no version either
    assert seen == [b"stored", b"merged"]


def test_update_of_a_vanished_record_asks_merge(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"here", later())
    loaded = store.load(key)
    store.delete(key)

    def interrupted(current: bytes | None) -> tuple[bytes, float]:
        if current is None:
            raise SessionInterrupted()
        return current, later()

    with pytest.raises(SessionInterrupted):
        store.update(key, interrupted, loaded)
    assert store.load(key) is None
    # A merge that accepts the loss writes a new record.
    store.update(key, lambda current: (b"revived", later()), loaded)
    record = store.load(key)
    assert record is not None and record.payload == b"revived"


def test_merge_that_raises_writes_nothing(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"kept", later())

    def broken(current: bytes | None) -> tuple[bytes, float]:
        raise ValueError("unserializable")

    with pytest.raises(ValueError):
        store.update(key, broken, store.load(key))
    record = store.load(key)
    assert record is not None and record.payload == b"kept"


def test_conflicting_save_merges_with_the_newer_record(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"v1", later())
    mine = store.load(key)
    theirs = store.load(key)
    store.update(key, lambda current: (b"v2-theirs", later()), theirs)
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return (current or b"") + b"+mine", later()

    store.update(key, merge, mine)
    assert seen == [b"v1", b"v2-theirs"]  # optimistic try, then the re-read
    record = store.load(key)
    assert record is not None and record.payload == b"v2-theirs+mine"


def test_endless_contention_gives_up(
    store: MemcachedStore,
    clean_memcached: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memcached_module, "MAX_ATTEMPTS", 3)
    key = generate_key()
    store.create(key, b"0", later())
    rival = MemcachedStore(clean_memcached.address)
    calls = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        calls.append(current)
        # Another request saves in between, every time.
        rival.update(key, lambda c: (str(len(calls)).encode(), later()), None)
        return b"mine", later()

    with pytest.raises(StoreUnavailable, match="contention"):
        store.update(key, merge, store.load(key))
    assert len(calls) == 3


def test_delete(store: MemcachedStore) -> None:
    key = generate_key()
    store.delete(key)  # absent: not an error
    store.create(key, b"x", later())
    store.delete(key)
    assert store.load(key) is None


def test_clear_expired_returns_zero(store: MemcachedStore) -> None:
    store.create(generate_key(), b"x", later(0.1))
    assert store.clear_expired() == 0


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x",
        "a" * 42,
        "a" * 44,
        "a" * 42 + "!",
        "é" * 43,
        "\x00" * 43,
        "a" * 10_000,
        "a b" * 15,
        None,
        42,
        b"a" * 43,
    ],
)
def test_exists_is_false_for_garbage_and_never_raises(
    store: MemcachedStore, bad: object
) -> None:
    assert store.exists(bad) is False  # type: ignore[arg-type]


def test_exists(store: MemcachedStore) -> None:
    key = generate_key()
    assert not store.exists(key)
    store.create(key, b"x", later())
    assert store.exists(key)


def test_raw_ids_never_reach_the_server(store: MemcachedStore, raw: Client) -> None:
    keys = [generate_key() for _ in range(5)]
    for key in keys:
        store.create(key, b"payload", later())
    time.sleep(0.05)
    names = item_names(raw)
    assert sorted(names) == sorted("wsgisession:" + storage_key(k) for k in keys)
    for key in keys:
        assert all(key not in name for name in names)
        assert raw.get("wsgisession:" + key) is None


def test_key_prefixes_separate_stores(clean_memcached: ServerProcess) -> None:
    one = MemcachedStore(clean_memcached.address, key_prefix="one:")
    two = MemcachedStore(clean_memcached.address, key_prefix="two:")
    key = generate_key()
    assert one.create(key, b"for one", later()) == key
    assert two.load(key) is None
    assert two.create(key, b"for two", later()) == key
    one.delete(key)
    record = two.load(key)
    assert one.load(key) is None
    assert record is not None and record.payload == b"for two"


def test_load_and_save_cost_two_round_trips(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    store.create(key, b"{}", later())
    before = counts(raw)
    record = store.load(key)
    store.update(key, lambda current: (b'{"a": 1}', later()), record)
    after = counts(raw)
    delta = {name: after[name] - before[name] for name in after}
    # gets counts as one cmd_get; cas as one cmd_set (and a cas hit).
    assert delta == {
        "cmd_get": 1,
        "cmd_set": 1,
        "cas_hits": 1,
        "cas_misses": 0,
        "delete_hits": 0,
    }


def test_sockets_have_tcp_nodelay(store: MemcachedStore) -> None:
    store.load(generate_key())
    (client,) = store._servers[0]._pool.free
    assert client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_several_servers_share_the_keys_like_hash_client(
    clean_memcached: ServerProcess, fresh_memcached: ServerProcess
) -> None:
    addresses = [clean_memcached.address, fresh_memcached.address]
    store = MemcachedStore(addresses)
    keys = [generate_key() for _ in range(40)]
    for key in keys:
        store.create(key, key.encode(), later())
    per_server = []
    for server in (clean_memcached, fresh_memcached):
        client = Client((server.host, server.port))
        per_server.append(sum(client.get(store._name(k)) is not None for k in keys))
        client.close()
    assert sum(per_server) == len(keys) and min(per_server) > 0
    hashing = HashClient([(s.host, s.port) for s in (clean_memcached, fresh_memcached)])
    for key in keys:
        record = store.load(key)
        assert record is not None and record.payload == key.encode()
        assert hashing.get(store._name(key)).endswith(key.encode())


# -- concurrency -----------------------------------------------------------


def _increment(store: MemcachedStore, key: str, field: str, times: int) -> None:
    """``times`` requests, each loading the session and adding 1 to ``field``."""

    def merge(current: bytes | None) -> tuple[bytes, float]:
        data = json.loads(current) if current is not None else {}
        data[field] = data.get(field, 0) + 1
        return json.dumps(data).encode(), later()

    for _ in range(times):
        store.update(key, merge, store.load(key))


def _run_threads(store: MemcachedStore, key: str, fields: list[str]) -> None:
    """One thread per field, 30 requests each; re-raises any thread's error."""
    with ThreadPoolExecutor(max_workers=len(fields)) as pool:
        futures = [pool.submit(_increment, store, key, f, 30) for f in fields]
    for future in futures:
        future.result()


def test_threads_updating_different_fields_lose_nothing(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"{}", later())
    fields = [f"t{i}" for i in range(8)]
    _run_threads(store, key, fields)
    record = store.load(key)
    assert record is not None
    assert json.loads(record.payload) == {field: 30 for field in fields}


def test_threads_updating_the_same_field_lose_nothing(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"{}", later())
    _run_threads(store, key, ["n"] * 8)
    record = store.load(key)
    assert record is not None
    assert json.loads(record.payload) == {"n": 240}


def test_a_forked_child_uses_its_own_connections(store: MemcachedStore) -> None:
    key = generate_key()
    store.create(key, b"parent", later())
    assert store.load(key) is not None  # the parent has a connection open now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for _ in range(500):
                store.update(key, lambda current: (b"child", later()), store.load(key))
            code = 0
        finally:
            os._exit(code)
    for _ in range(500):
        assert store.load(key) is not None
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record = store.load(key)
    assert record is not None and record.payload == b"child"


def test_a_value_over_the_item_limit_is_store_unavailable(
    store: MemcachedStore,
) -> None:
    key = generate_key()
    with pytest.raises(StoreUnavailable, match="too large"):
        store.create(key, b"x" * 2_000_000, later())
    assert store.create(key, b"small", later()) == key  # the store still works
