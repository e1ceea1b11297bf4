"""MemcachedStore against a real memcached (see conftest.py).

Only what this store does on its own: the store protocol is tested once, for
every store, in test_store_contract.py.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from helpers import FakeClock
from listening_ports import dead_port
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]
from servers import ServerProcess

from wsgisession.errors import (
    ConfigError,
    LockTimeout,
    StoreUnavailable,
)
from wsgisession.keys import generate_key
from wsgisession.stores._memcached_items import CLOCK_MARGIN, RELATIVE_EXPIRE_LIMIT
from wsgisession.stores.memcached import MemcachedStore, memcached_expire

DAY = 24 * 3600


@pytest.fixture
def store(clean_memcached: ServerProcess) -> Iterator[MemcachedStore]:
    store = MemcachedStore(clean_memcached.address)
    yield store
    store.close()


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


def counts(raw: Client) -> dict[str, int]:
    stats = raw.stats()
    names = ("cmd_get", "cmd_set", "cas_hits", "cas_misses", "delete_hits")
    return {name: int(stats[name.encode()]) for name in names}


# -- the expiry arithmetic -------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (0.2, 3),
        (1.0, 3),
        (1.5, 4),
        (59.999, 62),
        (RELATIVE_EXPIRE_LIMIT - 2, RELATIVE_EXPIRE_LIMIT),
    ],
)
def test_expire_is_seconds_left_rounded_up_plus_the_margin(
    remaining: float, expected: int
) -> None:
    """memcached's clock lags by up to 1 s: its TTL ends after the header's."""
    assert CLOCK_MARGIN == 2
    assert memcached_expire(1_700_000_000.0 + remaining, 1_700_000_000.0) == expected


def test_expire_beyond_30_days_is_an_absolute_unix_time() -> None:
    moment = 1_700_000_000.0
    expires_at = moment + RELATIVE_EXPIRE_LIMIT - 1.5
    assert memcached_expire(expires_at, moment) == math.ceil(expires_at) + 2
    far = moment + 400 * DAY
    assert memcached_expire(far, moment) == math.ceil(far) + 2


@pytest.mark.parametrize("expires_at", [1_699_999_999.0, 1_700_000_000.0, math.nan])
def test_expire_of_a_past_record_is_none_never_zero(expires_at: float) -> None:
    assert memcached_expire(expires_at, 1_700_000_000.0) is None


def test_expire_past_32_bits_is_never() -> None:
    """memcached keeps absolute times in 32 bits (to January 2038): a record
    that lives longer gets no TTL at all, its header ends it."""
    last = float(2**31 - 1 - CLOCK_MARGIN)
    assert memcached_expire(last, 1_700_000_000.0) == 2**31 - 1
    assert memcached_expire(last + 0.5, 1_700_000_000.0) == 0
    assert memcached_expire(math.inf, 1_700_000_000.0) == 0


# -- construction ----------------------------------------------------------


def test_constructor_does_not_connect() -> None:
    with dead_port() as port:  # connections refused
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


def test_ttl_is_the_time_left(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    store.create(key, b"soon", later(5))
    assert ttl_of(raw, store._name(key)) in (6, 7)  # 5 s and the clock margin


def test_record_beyond_30_days(store: MemcachedStore, raw: Client) -> None:
    key = generate_key()
    expires_at = later(40 * DAY)
    store.create(key, b"long", expires_at)
    record = store.load(key)
    assert record is not None and record.expires_at == expires_at
    ttl = ttl_of(raw, store._name(key))
    # Up to 3 s over: the expiry is rounded up to a whole second, memcached's
    # clock lags real time by up to one, and it turns an absolute time into
    # its own from a start time kept in whole seconds (one CI run saw +3).
    assert ttl is not None and abs(ttl - 40 * DAY - CLOCK_MARGIN) <= 3


def test_record_just_under_30_days_uses_a_relative_ttl(
    store: MemcachedStore, raw: Client
) -> None:
    key = generate_key()
    store.create(key, b"month", later(29 * DAY))
    ttl = ttl_of(raw, store._name(key))
    assert ttl is not None and abs(ttl - 29 * DAY - CLOCK_MARGIN) <= 2


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
    (client,) = store._servers[0]._free
    assert client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_sockets_wait_by_the_kernels_timeout(clean_memcached: ServerProcess) -> None:
    # Python's own socket timeout would poll before every send and receive.
    store = MemcachedStore(clean_memcached.address, timeout=1.25)
    store.load(generate_key())
    (client,) = store._servers[0]._free
    assert client.sock.gettimeout() is None
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        timeval = client.sock.getsockopt(socket.SOL_SOCKET, option, 16)
        seconds, microseconds = struct.unpack("ll", timeval)
        # The kernel keeps it in clock ticks (up to 10 ms each).
        assert seconds + microseconds / 1e6 == pytest.approx(1.25, abs=0.01)
    store.close()


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


def test_a_value_over_the_item_limit_is_store_unavailable(
    store: MemcachedStore,
) -> None:
    key = generate_key()
    with pytest.raises(StoreUnavailable, match="too large"):
        store.create(key, b"x" * 2_000_000, later())
    assert store.create(key, b"small", later()) == key  # the store still works


# -- expiry: the header is the only judge ----------------------------------


def sleep_until(clock: FakeClock, moment: float) -> None:
    """Let real time reach ``moment`` (memcached's own clock runs on), then
    show the store that very moment: a late wake-up on a loaded machine
    (a load meant for 1.9 s done past 2 s, or the last try of a 0.1 s lock
    wait made past the holder's end) no longer moves what the header judges."""
    time.sleep(max(0.0, moment - time.time()))
    clock.now = moment


@pytest.mark.slow
def test_a_record_lives_exactly_until_its_expires_at(
    store: MemcachedStore, frozen_clock: FakeClock
) -> None:
    """memcached's clock lags by up to 1 s: its own TTL must not end it early."""
    key, created = generate_key(), frozen_clock()
    store.create(key, b"two seconds", created + 2)
    sleep_until(frozen_clock, created + 1.9)
    assert store.load(key) is not None
    sleep_until(frozen_clock, created + 2.02)
    assert store.load(key) is None


@pytest.mark.slow
def test_a_lock_lives_exactly_until_its_ttl(
    store: MemcachedStore, frozen_clock: FakeClock
) -> None:
    key, taken = generate_key(), frozen_clock()
    holder = store.lock(key, 1.0, 2.0)
    holder.__enter__()  # a holder that never lets go
    sleep_until(frozen_clock, taken + 1.85)
    with pytest.raises(LockTimeout), store.lock(key, 0.1, 2.0):
        pass  # pragma: no cover - never reached
    sleep_until(frozen_clock, taken + 2.02)
    successor = store.lock(key, 0.1, 60.0)
    successor.__enter__()  # the holder's time is up: taken over at once
    holder.__exit__(None, None, None)  # the late holder frees nothing of its successor
    with pytest.raises(LockTimeout), store.lock(key, 0.1, 60.0):
        pass  # pragma: no cover - never reached
    successor.__exit__(None, None, None)
    with store.lock(key, 0.1, 60.0):
        pass


def test_an_expired_loaded_copy_is_never_written_back(
    store: MemcachedStore, raw: Client, frozen_clock: FakeClock
) -> None:
    """The item outlives its header (the clock margin): its CAS token still
    matches, but the copy is dead, and merge must see that."""
    key = generate_key()
    store.create(key, b"brief", frozen_clock() + 0.2)
    loaded = store.load(key)
    assert loaded is not None
    frozen_clock.advance(0.3)
    assert raw.get(store._name(key)) is not None  # memcached still holds it
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"fresh", later()

    store.update(key, merge, loaded)
    assert seen == [None]
    record = store.load(key)
    assert record is not None and record.payload == b"fresh"


def test_create_is_one_add(store: MemcachedStore, raw: Client) -> None:
    store.load(generate_key())  # opens the connection
    before = counts(raw)
    store.create(generate_key(), b"{}", later())
    after = counts(raw)
    delta = {name: after[name] - before[name] for name in after}
    assert delta == {
        "cmd_get": 0,
        "cmd_set": 1,
        "cas_hits": 0,
        "cas_misses": 0,
        "delete_hits": 0,
    }


def test_a_restarted_server_costs_no_error(fresh_memcached: ServerProcess) -> None:
    """Pooled connections to the old process fail once, then run again anew."""
    store, key = MemcachedStore(fresh_memcached.address), generate_key()
    store.create(key, b"before", later())
    fresh_memcached.stop(crash=True)
    fresh_memcached.start()
    assert store.load(key) is None  # the restart emptied it; no error
    assert store.create(key, b"after", later()) == key
    record = store.load(key)
    assert record is not None and record.payload == b"after"
    store.close()


def test_close_leaves_no_open_socket(clean_memcached: ServerProcess) -> None:
    store = MemcachedStore(clean_memcached.address)
    store.create(generate_key(), b"x", later())
    (client,) = store._servers[0]._free
    store.close()
    assert client.sock is None
    assert store.load(generate_key()) is None  # reconnects if used again
    store.close()
