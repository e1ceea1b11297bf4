"""Expiry at its edges, on real stores: a session set to expire at a moment
lives until that moment, not up to a second less; a store keeps a record
as long as its expiry says, also past memcached's last absolute time (2038)
and up to the 100 years ``set_expiry()`` accepts.

Time is moved with ``wsgisession.clock.use`` (the ``frozen_clock`` fixture);
the servers are real.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from helpers import FakeClock, build_store, store_argument
from pymemcache.client.base import Client  # type: ignore[import-untyped]

from wsgisession import Session
from wsgisession.expiry import MAX_SECONDS
from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import Store, now

UTC = datetime.UTC
KINDS = ["memory", "file", "sqlite", "memcached", "redis"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    return build_store(kind, store_argument(kind, request, tmp_path))


def _saved_with_expiry(store: Store, value: object) -> str:
    session = Session(store)
    session["a"] = 1
    session.set_expiry(value)  # type: ignore[arg-type]
    session.save()
    assert session.session_key is not None
    return session.session_key


def test_a_session_set_to_expire_at_a_moment_lives_until_that_moment(
    store: Store, frozen_clock: FakeClock
) -> None:
    """The record's lifetime was the whole seconds left (Django's
    get_expiry_age()): saved at x.75 s, a session set to end at a whole
    second died a quarter of a second before it."""
    frozen_clock.now = float(int(frozen_clock.now)) + 0.75
    moment = datetime.datetime.fromtimestamp(int(frozen_clock.now) + 10, UTC)
    key = _saved_with_expiry(store, moment)
    frozen_clock.now = moment.timestamp() - 0.001
    assert Session(store, session_key=key).get("a") == 1
    frozen_clock.now = moment.timestamp()
    assert Session(store, session_key=key).get("a") is None


def test_a_timedelta_counts_from_the_set_expiry_call_not_from_the_save(
    store: Store, frozen_clock: FakeClock
) -> None:
    """``set_expiry(timedelta(seconds=10))``, then half a second of work
    before the save: the session ends 10 s after the call (Django's fixed
    moment), not 9 s after the save."""
    session = Session(store)
    session["a"] = 1
    end = frozen_clock.now + 10
    session.set_expiry(datetime.timedelta(seconds=10))
    frozen_clock.advance(0.5)
    session.save()
    key = session.session_key
    frozen_clock.now = end - 0.001
    assert Session(store, session_key=key).get("a") == 1


# -- a server keeps a far-future record as long as its header says -------------


def _server_ttl(store: Store, key: str, request: pytest.FixtureRequest) -> float | None:
    """The seconds the server itself keeps the record; None: no TTL."""
    if isinstance(store, RedisStore):
        millis = store._call("pttl", store._name(key))
        return None if millis == -1 else millis / 1000
    assert isinstance(store, MemcachedStore)
    server = request.getfixturevalue("memcached_server")
    raw = Client((server.host, server.port), timeout=5)
    try:
        reply = raw.raw_command(b"mg " + store._name(key).encode() + b" t", b"\r\n")
    finally:
        raw.close()
    assert reply.startswith(b"HD"), reply  # the item is there
    seconds = int(reply.split(b" t")[1])
    return None if seconds == -1 else seconds


@pytest.mark.parametrize("store", ["memcached", "redis"], indirect=True)
@pytest.mark.parametrize(
    "seconds", [20 * 366 * 86400, MAX_SECONDS], ids=["20 years", "100 years"]
)
def test_a_server_keeps_a_far_future_record_until_its_expiry(
    store: Store, seconds: int, request: pytest.FixtureRequest
) -> None:
    """memcached's TTL was capped at 2**31 - 1 (January 2038) and Redis's
    at 100 times 365 days: a session set to last 20 years (memcached) or
    the 100 years set_expiry() takes (Redis) was dropped by the server
    years or months before its expiry."""
    key = generate_key()
    expires_at = now() + seconds
    assert store.create(key, b"far", expires_at) == key
    ttl = _server_ttl(store, key, request)
    assert ttl is None or now() + ttl >= expires_at
    record = store.load(key)
    assert record is not None and record.expires_at == expires_at


def _ms_early(store: RedisStore, key: str, expires_at: float) -> float:
    """How long before ``expires_at`` Redis will drop the record (ms; > 0: early)."""
    dropped_at: int = store._call("pexpiretime", store._name(key))  # absolute ms
    return expires_at * 1000 - dropped_at


@pytest.mark.slow
@pytest.mark.parametrize("store", ["redis"], indirect=True)
def test_redis_drops_a_record_no_sooner_than_its_expiry(store: Store) -> None:
    """Redis counts a PX from its clock's whole millisecond, which may be up
    to 1 ms behind the moment the store read: a TTL of exactly the time left
    had Redis drop most records up to 1 ms before their expiry (and the
    far-future test above fail about once in a hundred runs, when its check
    came within that millisecond). Each record is created, then updated."""
    assert isinstance(store, RedisStore)
    early = []
    for _ in range(200):
        key, created = generate_key(), now() + 60
        assert store.create(key, b"new", created) == key
        early.append(_ms_early(store, key, created))
        renewed = now() + 120
        store.update(key, lambda current, at=renewed: (b"changed", at), store.load(key))
        early.append(_ms_early(store, key, renewed))
    dropped_early = [ms for ms in early if ms > 0]
    assert dropped_early == [], f"{len(dropped_early)} of 400 writes end early (ms)"
