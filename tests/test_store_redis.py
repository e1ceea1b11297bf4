"""RedisStore against a real redis-server (see conftest.py).

Only what this store does on its own: the store protocol is tested once, for
every store, in test_store_contract.py.
"""

from __future__ import annotations

import logging
import math
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

import pytest
import redis
from helpers import FakeClock
from listening_ports import dead_port
from redis.crc import key_slot
from servers import RedisCluster, ServerProcess

from wsgisession.errors import (
    ConfigError,
    LockTimeout,
    StoreUnavailable,
)
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores._redis_clients import POOL_SIZE
from wsgisession.stores._shared import LOCK_SUFFIX
from wsgisession.stores.redis import RedisStore, redact_url, slot_mate, ttl_ms

DAY = 24 * 3600
_END_MARK = "wsgisession-test-end"


@pytest.fixture
def raw(clean_redis: ServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    yield client
    client.close()


@pytest.fixture
def store(clean_redis: ServerProcess) -> Iterator[RedisStore]:
    store = RedisStore(clean_redis.url)
    yield store
    store.close()


def later(seconds: float = 600) -> float:
    return time.time() + seconds


def name_of(key: str, prefix: str = "wsgisession:") -> str:
    return prefix + storage_key(key)


# Commands of the test's own watching clients, left out of command_calls().
_WATCHING = {"info", "config|resetstat", "monitor", "hello", "echo", "client|setinfo"}


def command_calls(raw: redis.Redis) -> dict[str, int]:
    """Calls per command since CONFIG RESETSTAT (INFO commandstats)."""
    stats = raw.info("commandstats")
    return {
        name[len("cmdstat_") :]: int(value["calls"])
        for name, value in stats.items()
        if name[len("cmdstat_") :] not in _WATCHING
    }


@pytest.fixture
def sent_by_clients(
    clean_redis: ServerProcess,
) -> Iterator[Callable[[], AbstractContextManager[list[str]]]]:
    """Use as ``with sent_by_clients() as sent:``: afterwards ``sent`` lists the
    commands clients sent meanwhile (MONITOR), those run by scripts left out."""
    watcher = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    marker = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    marker_address = marker.client_info()["addr"]  # connects before MONITOR

    @contextmanager
    def watch() -> Iterator[list[str]]:
        sent: list[str] = []
        with watcher.monitor() as monitor:  # type: ignore[no-untyped-call]
            yield sent
            marker.echo(_END_MARK)
            while True:
                entry = monitor.next_command()
                address = f"{entry['client_address']}:{entry['client_port']}"
                if address == marker_address:
                    break
                if entry["client_type"] != "lua":
                    sent.append(entry["command"].split()[0].upper())

    yield watch
    watcher.close()
    marker.close()


# -- the expiry arithmetic -------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(0.0001, 1), (0.5, 500), (1.0, 1000), (1.0004, 1001), (40 * DAY, 40 * DAY * 1000)],
)
def test_ttl_is_milliseconds_left_rounded_up(remaining: float, expected: int) -> None:
    assert ttl_ms(1_700_000_000.0 + remaining, 1_700_000_000.0) == expected


@pytest.mark.parametrize("expires_at", [1_699_999_999.0, 1_700_000_000.0, math.nan])
def test_ttl_of_a_past_record_is_zero(expires_at: float) -> None:
    assert ttl_ms(expires_at, 1_700_000_000.0) == 0


def test_ttl_is_capped() -> None:
    assert 0 < ttl_ms(math.inf, 1_700_000_000.0) < 2**62


# -- construction ----------------------------------------------------------


def test_constructor_does_not_connect() -> None:
    with dead_port() as port:  # connections refused
        store = RedisStore(f"redis://127.0.0.1:{port}/0")
        assert repr(store) == (
            f"RedisStore(redis://127.0.0.1:{port}/0, key_prefix='wsgisession:')"
        )
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            store.load(generate_key())


def test_password_never_shows() -> None:
    with dead_port() as port:  # connections refused
        store = RedisStore(f"redis://user:s3cret@127.0.0.1:{port}/0?password=s3cret")
        assert "s3cret" not in repr(store)
        with pytest.raises(StoreUnavailable) as caught:
            store.load(generate_key())
        assert "s3cret" not in str(caught.value)
        assert "s3cret" not in caught.value.store


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://:pw@h:1/2", "redis://***@h:1/2"),
        ("rediss://user:pw@h:1/0", "rediss://***@h:1/0"),
        ("unix:///run/r.sock?db=1&password=pw", "unix:///run/r.sock?db=1&password=***"),
        (
            "redis://h:1/0?password=a&password=b",
            "redis://h:1/0?password=***&password=***",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url", ["redis://h", "redis://h/", "redis://h:1/15", "rediss://u:p@h:1/0?db=2"]
)
def test_good_urls(url: str) -> None:
    assert repr(RedisStore(url)).startswith("RedisStore(redis")


def test_unix_socket_url_is_accepted() -> None:
    store = RedisStore("unix:///nonexistent/redis.sock?db=0")
    with pytest.raises(StoreUnavailable, match="unix:///nonexistent/redis.sock"):
        store.load(generate_key())


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"url": "redis://h:1/0", "client": redis.Redis()},
        {"url": "http://h:1/0"},
        {"url": "h:1"},
        {"url": "redis://127.0.0.1:6379/notadb"},
        {"url": "redis://127.0.0.1:notaport/0"},
        {"url": "redis://127.0.0.1:6379/0?db=x"},
        {"url": 42},
        {"url": "redis://h:1/0", "key_prefix": b"x"},
        {"url": "redis://h:1/0", "socket_timeout": 0},
        {"client": redis.Redis(decode_responses=True)},
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RedisStore(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        "decode_responses=true",
        "decode_responses=false",  # redis-py reads any value as true
        "ssl_cert_reqs=none",  # an option of rediss:// only
        "socket_timout=1",  # a typo
    ],
)
def test_url_options_redis_py_would_refuse_late_are_config_errors(query: str) -> None:
    """Found at construction, not by the first request: redis-py takes any
    query option and fails only when it connects (a TypeError on every
    request), and with decode_responses (any value) decodes records, which
    are not UTF-8 (a UnicodeDecodeError on every load)."""
    with pytest.raises(ConfigError, match="RedisStore"):
        RedisStore(f"redis://127.0.0.1:1/0?{query}")


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_a_cluster_url_that_decodes_replies_is_a_config_error(scheme: str) -> None:
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisStore(f"{scheme}://127.0.0.1:1?decode_responses=true")


def test_a_client_object_can_be_passed(clean_redis: ServerProcess) -> None:
    client = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    store = RedisStore(client=client, key_prefix="c:")
    assert repr(store) == "RedisStore(<Redis>, key_prefix='c:')"
    key = generate_key()
    assert store.create(key, b"via client", later()) == key
    store.update(key, lambda current: (b"updated", later()), store.load(key))
    assert client.exists(name_of(key, "c:")) == 1
    record = store.load(key)
    assert record is not None and record.payload == b"updated"


# -- records ---------------------------------------------------------------


def test_corrupt_record_loads_as_none_with_one_warning(
    store: RedisStore, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key = generate_key()
    raw.set(name_of(key), b"garbage", ex=60)
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        assert store.load(key) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "RedisStore" in warnings[0].getMessage()
    assert key not in warnings[0].getMessage()


def test_record_past_its_header_expiry_is_absent(
    store: RedisStore, raw: redis.Redis
) -> None:
    key = generate_key()
    raw.set(name_of(key), struct.pack(">Bd", 1, time.time() - 1) + b"old", ex=60)
    assert store.load(key) is None
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"new", later()

    store.update(key, merge, None)  # overwrites the dead value
    assert seen == [None]
    record = store.load(key)
    assert record is not None and record.payload == b"new"


@pytest.mark.parametrize(
    "value",
    [struct.pack(">Bd", 1, time.time() - 1) + b"expired", b"garbage"],
    ids=["dead", "corrupt"],
)
def test_create_takes_over_a_dead_record_still_on_the_server(
    store: RedisStore, raw: redis.Redis, value: bytes
) -> None:
    """As every store takes over an expired key: a record whose header has
    expired by this host's clock while Redis's TTL still runs (written by a
    host whose clock is behind, or within Redis's tick), or a corrupt one.
    SET NX alone refused it."""
    key = generate_key()
    raw.set(name_of(key), value, ex=60)
    assert store.create(key, b"new", later(60)) == key
    record = store.load(key)
    assert record is not None and record.payload == b"new"
    assert 0 < raw.pttl(name_of(key)) <= 60_001


def test_create_never_writes_over_a_live_record_or_a_foreign_key(
    store: RedisStore, raw: redis.Redis
) -> None:
    live, foreign = generate_key(), generate_key()
    raw.set(name_of(live), struct.pack(">Bd", 1, later(60)) + b"live", ex=60)
    raw.rpush(name_of(foreign), b"someone else's list")
    assert store.create(live, b"new", later(60)) is None
    assert store.create(foreign, b"new", later(60)) is None
    record = store.load(live)
    assert record is not None and record.payload == b"live"
    assert raw.lrange(name_of(foreign), 0, -1) == [b"someone else's list"]


@contextmanager
def record_gone_after_call(
    store: RedisStore, raw: redis.Redis, key: str, call: int
) -> Iterator[None]:
    """Delete ``key``'s record as the store's ``call``-th command returns, as
    Redis does when its TTL runs out between two commands of the store."""
    code, seen = RedisStore._call.__code__, 0

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        nonlocal seen
        if event == "return" and frame.f_code is code:
            seen += 1
            if seen == call:
                sys.setprofile(None)
                raw.delete(name_of(key))

    sys.setprofile(profiler)
    try:
        yield
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("call", [1, 2], ids=["after-set-nx", "after-get"])
def test_create_takes_a_key_whose_dead_record_redis_ended_meanwhile(
    store: RedisStore, raw: redis.Redis, call: int
) -> None:
    """A dead record whose TTL runs out after the refused ``SET NX`` (or
    after the read that found it dead): the key is free, and the create
    takes it rather than give up (it refused it before: a key drawn again,
    or a streamed response's reserved key failing with StoreUnavailable)."""
    key = generate_key()
    raw.set(name_of(key), struct.pack(">Bd", 1, time.time() - 1) + b"dead", ex=60)
    with record_gone_after_call(store, raw, key, call):
        assert store.create(key, b"new", later(60)) == key
    record = store.load(key)
    assert record is not None and record.payload == b"new"


def test_two_creates_racing_for_a_dead_record_one_wins(
    store: RedisStore, raw: redis.Redis
) -> None:
    """Both read the dead record; the compare-and-set lets one write."""
    for _ in range(50):
        key = generate_key()
        dead = struct.pack(">Bd", 1, time.time() - 1) + b"dead"
        raw.set(name_of(key), dead, ex=60)
        start = threading.Barrier(2)

        def create(
            payload: bytes, key: str = key, start: threading.Barrier = start
        ) -> str | None:
            start.wait()
            return store.create(key, payload, later(60))

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(create, [b"first", b"second"]))
        assert sorted(results, key=str) == sorted([key, None], key=str)
        record = store.load(key)
        winner = b"first" if results[0] == key else b"second"
        assert record is not None and record.payload == winner


@pytest.mark.slow  # waits for the server to expire the record
def test_record_expires(store: RedisStore, raw: redis.Redis) -> None:
    key, started = generate_key(), time.time()
    store.create(key, b"brief", later(1))
    left = raw.pttl(name_of(key))
    # A second less what has passed: not 100 ms of slack a loaded machine
    # could use up. Redis's clock truncates to the ms: one more is kept.
    assert 1000 - (time.time() - started) * 1000 - 1 < left <= 1001
    time.sleep(1.2)
    assert store.load(key) is None
    assert raw.exists(name_of(key)) == 0


def test_record_beyond_30_days(store: RedisStore, raw: redis.Redis) -> None:
    key = generate_key()
    expires_at = later(40 * DAY)
    store.create(key, b"long", expires_at)
    record = store.load(key)
    assert record is not None and record.expires_at == expires_at
    assert abs(raw.pttl(name_of(key)) - 40 * DAY * 1000) < 2000


def test_update_sets_the_new_ttl(store: RedisStore, raw: redis.Redis) -> None:
    key = generate_key()
    store.create(key, b"x", later(60))
    store.update(key, lambda current: (b"y", later(3600)), store.load(key))
    assert abs(raw.pttl(name_of(key)) - 3600 * 1000) < 2000


def test_load_and_save_cost_two_round_trips(
    store: RedisStore,
    raw: redis.Redis,
    sent_by_clients: Callable[[], AbstractContextManager[list[str]]],
) -> None:
    warm = generate_key()  # loads the script and opens the connection
    store.create(warm, b"{}", later())
    store.update(warm, lambda current: (b"{}", later()), store.load(warm))
    key = generate_key()
    store.create(key, b"{}", later())
    raw.config_resetstat()
    with sent_by_clients() as sent:
        record = store.load(key)
        store.update(key, lambda current: (b'{"a": 1}', later()), record)
    assert sent == ["GET", "EVALSHA"]
    # The server also counts the GET and SET the script runs inside EVALSHA.
    assert command_calls(raw) == {"get": 2, "evalsha": 1, "set": 1}


def test_create_is_one_command(
    store: RedisStore,
    raw: redis.Redis,
    sent_by_clients: Callable[[], AbstractContextManager[list[str]]],
) -> None:
    store.load(generate_key())  # opens the connection
    raw.config_resetstat()
    with sent_by_clients() as sent:
        store.create(generate_key(), b"{}", later())
    assert sent == ["SET"]
    assert command_calls(raw) == {"set": 1}


# -- concurrency -----------------------------------------------------------


# -- one session, one slot: records and locks together -----------------------


@pytest.mark.parametrize(
    "prefix", ["wsgisession:", "", "app:{users}:", "a}b:", "x{}y:", "a{b:"]
)
def test_a_lock_hashes_to_its_records_slot(prefix: str) -> None:
    name = name_of(generate_key(), prefix)
    lock = slot_mate(name, ":lock", prefix)
    if prefix in ("a}b:", "x{}y:"):  # a stray brace cannot be quoted: plain suffix
        assert lock == name + ":lock"
        return
    assert key_slot(lock.encode()) == key_slot(name.encode())
    assert lock != name and lock.endswith(":lock")
    if "{" not in prefix or "}" in prefix:  # an ACL on the prefix covers it
        assert lock.startswith(prefix)


def test_record_names_are_unchanged_and_locks_are_tagged(
    store: RedisStore, raw: redis.Redis
) -> None:
    """Records written by earlier versions are read under the same name."""
    key = generate_key()
    raw.set(name_of(key), struct.pack(">Bd", 1, later()) + b"old", ex=60)
    record = store.load(key)
    assert record is not None and record.payload == b"old"
    lock = "wsgisession:{" + name_of(key) + "}:lock"
    with store.lock(key, 1.0, 60.0):
        assert raw.exists(lock) == 1
    assert raw.exists(lock) == 0


def test_an_uncached_script_runs_with_eval_on_the_keys_node(
    store: RedisStore,
    raw: redis.Redis,
    sent_by_clients: Callable[[], AbstractContextManager[list[str]]],
) -> None:
    key = generate_key()
    store.create(key, b"{}", later())
    raw.script_flush()
    with sent_by_clients() as sent:
        store.update(key, lambda current: (b"1", later()), store.load(key))
        store.update(key, lambda current: (b"2", later()), store.load(key))
    assert sent == ["GET", "EVALSHA", "EVAL", "GET", "EVALSHA"]  # never SCRIPT LOAD
    record = store.load(key)
    assert record is not None and record.payload == b"2"


def test_an_expired_loaded_copy_is_never_written_back(
    store: RedisStore, raw: redis.Redis, frozen_clock: FakeClock
) -> None:
    """Even while Redis still holds the very bytes that were loaded."""
    key = generate_key()
    store.create(key, b"brief", frozen_clock() + 0.2)
    loaded = store.load(key)
    assert loaded is not None
    raw.pexpire(name_of(key), 60_000)  # held past its header: same digest
    frozen_clock.advance(0.25)
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"fresh", later()

    store.update(key, merge, loaded)
    assert seen == [None]


@pytest.mark.slow
def test_a_lock_lives_exactly_its_ttl(store: RedisStore, raw: redis.Redis) -> None:
    """Redis's own count of the lock's time left, not a try at 0.2 s and one
    at 0.27 s, which a loaded machine made late (the lock gone) or early
    (its SET still on the way): both failed one run in twenty."""
    key, started = generate_key(), time.time()
    holder = store.lock(key, 1.0, 0.25)
    holder.__enter__()  # a holder that never lets go
    with pytest.raises(LockTimeout), store.lock(key, 0.02, 60.0):
        pass  # pragma: no cover - never reached
    left = raw.pttl(slot_mate(name_of(key), LOCK_SUFFIX, "wsgisession:"))
    assert 250 - (time.time() - started) * 1000 - 1 < left <= 250
    time.sleep(left / 1000 + 0.02)  # past the holder's time, by Redis's count
    with store.lock(key, 0.05, 60.0):
        holder.__exit__(None, None, None)  # frees nothing of its successor
        with pytest.raises(LockTimeout), store.lock(key, 0.05, 60.0):
            pass  # pragma: no cover - never reached


# -- Redis Cluster URLs and close() --------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://",
        "redis+cluster://h:1/2",
        "redis+cluster://h:notaport",
        "rediss+cluster://h:1/0/x",
        "redis+cluster://h:1,h:notaport",
        "redis+cluster://h:1,",
        "redis+cluster://h:1,:2/0",
    ],
)
def test_bad_cluster_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="redis"):
        RedisStore(url)


def test_a_cluster_url_does_not_connect_before_use() -> None:
    with dead_port() as port:  # connections refused
        store = RedisStore(f"redis+cluster://:s3cret@127.0.0.1:{port}")
        assert repr(store) == (
            f"RedisStore(redis+cluster://***@127.0.0.1:{port}, key_prefix='wsgisession:')"
        )
        with pytest.raises(StoreUnavailable) as caught:
            store.load(generate_key())
        assert "s3cret" not in str(caught.value)
        store.close()


def test_a_cluster_url_reaches_every_master(
    clean_redis_cluster: RedisCluster,
) -> None:
    store = RedisStore(clean_redis_cluster.url)
    keys = [generate_key() for _ in range(30)]
    for key in keys:
        assert store.create(key, key.encode(), later()) == key
    homes = {clean_redis_cluster.node_of(name_of(key)).port for key in keys}
    assert len(homes) == 3
    assert [payload(store, key) for key in keys] == [key.encode() for key in keys]
    store.close()
    assert payload(store, keys[0]) == keys[0].encode()  # maps the cluster again
    store.close()


def test_a_cluster_url_may_name_more_nodes_for_when_the_first_is_down(
    clean_redis_cluster: RedisCluster,
) -> None:
    """A worker that starts while the one node its URL named is down could
    serve no session at all, though the other masters were up."""
    with dead_port() as dead:  # connections refused
        nodes = ",".join(clean_redis_cluster.addresses)
        hidden = RedisStore(f"redis+cluster://:s3cret@127.0.0.1:{dead},{nodes}")
        assert repr(hidden) == (
            f"RedisStore(redis+cluster://***@127.0.0.1:{dead},{nodes}, "
            "key_prefix='wsgisession:')"
        )
        store = RedisStore(f"redis+cluster://127.0.0.1:{dead},{nodes}")
        key = generate_key()
        assert store.create(key, b"reached", later()) == key
        assert payload(store, key) == b"reached"
        store.close()
        alone = RedisStore(f"redis+cluster://127.0.0.1:{dead}")
        with pytest.raises(StoreUnavailable):
            alone.load(key)
        alone.close()


def payload(store: RedisStore, key: str) -> bytes:
    record = store.load(key)
    assert record is not None
    return record.payload


def test_close_closes_the_stores_own_client_only(
    clean_redis: ServerProcess, raw: redis.Redis
) -> None:
    own = RedisStore(clean_redis.url)
    given = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    theirs = RedisStore(client=given)
    key = generate_key()
    own.create(key, b"x", later())
    theirs.load(key)
    own.close()
    theirs.close()
    pool = own._client.connection_pool
    assert pool._connections
    assert all(c._sock is None for c in pool._connections)
    assert given.ping()  # the caller's client is still theirs to use
    assert payload(own, key) == b"x"  # a closed store reconnects if used
    own.close()
    given.close()


@pytest.mark.slow
def test_more_threads_than_pooled_connections_wait_for_one(
    store: RedisStore, raw: redis.Redis
) -> None:
    """150 threads whose commands the paused server holds: past the pool's 100
    connections a thread waits for one (redis-py 8's plain pool would fail)."""
    key = generate_key()
    store.create(key, b"shared", later())
    threads = 150
    start = threading.Barrier(threads + 1)

    def load() -> bytes:
        start.wait()
        return payload(store, key)

    with ThreadPoolExecutor(threads) as executor:
        loads = [executor.submit(load) for _ in range(threads)]
        raw.execute_command("CLIENT", "PAUSE", 300, "ALL")
        start.wait()
        results = [future.result() for future in loads]
    assert results == [b"shared"] * threads
    assert len(store._client.connection_pool._connections) == POOL_SIZE


def test_the_ini_takes_a_cluster_url(clean_redis_cluster: RedisCluster) -> None:
    from redis.cluster import RedisCluster as ClusterClient

    from wsgisession.config import parse_settings

    _, spec = parse_settings(
        {"store": "redis", "redis_url": clean_redis_cluster.url, "key_prefix": "c:"}
    )
    store = spec.build()
    assert isinstance(store, RedisStore)
    key = generate_key()
    assert store.create(key, b"in the cluster", later()) == key
    assert payload(store, key) == b"in the cluster"
    assert isinstance(store._client, ClusterClient)
    store.close()
