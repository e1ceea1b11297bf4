"""MemcachedStore at memcached's item size (``-I``): a user's index is one
item, and a user who piles up more sessions than it holds must still be
able to log in.

The server here takes items of 2 KB (memcached's default is 1 MB): the
index then holds a couple of dozen sessions instead of about 15,000.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, memcached

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore

USER = "monitoring-probe"
#: Bytes memcached takes in one item here (its smallest chunk must fit).
ITEM_SIZE = 2048


@pytest.fixture
def small_items(tmp_path: Path) -> Iterator[ServerProcess]:
    server = memcached(tmp_path)
    server.argv += ["-I", str(ITEM_SIZE), "-o", f"slab_chunk_max={ITEM_SIZE // 2}"]
    server.start()
    yield server
    server.stop(crash=True)


@pytest.fixture
def store(small_items: ServerProcess) -> Iterator[MemcachedStore]:
    store = MemcachedStore(small_items.address)
    yield store
    store.close()


def log_in(store: MemcachedStore, expires_at: float) -> str:
    key = generate_key()
    assert store.create_user_session(USER, key, b"device", expires_at) == key
    return key


@pytest.mark.slow
def test_a_login_past_the_item_size_ends_the_sessions_that_expire_soonest(
    store: MemcachedStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The index of a user with more sessions than one item holds could not
    be written: every later login of that user raised StoreUnavailable
    ('object too large for cache', as if the session were too big) until
    enough of their sessions expired, weeks later (a script logging in every
    few minutes reached memcached's default 1 MB in days). Now the login
    ends the user's sessions that expire soonest to make room, and says so."""
    start = time.time() + 3600
    keys = [log_in(store, start + i) for i in range(60)]  # twice what fits

    listed = store.user_session_records(USER)
    assert len(listed) < len(keys)  # the oldest ones made room
    newest = keys[-len(listed) :]
    for key in newest:
        assert store.load(key) is not None
        assert store.user_index_intact(USER, key)
    for key in keys[: -len(listed)]:
        assert store.load(key) is None  # ended: not left unrevocable
    assert "item size" in caplog.text


@pytest.mark.slow
def test_a_user_logging_in_again_and_again_at_the_item_size_warns_once(
    store: MemcachedStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the item size every login of the user makes room, and each one
    logged a WARNING: a client with an account (or a shared probe account)
    logging in in a loop wrote a line per two logins, 486 in 1,000. The
    first is a WARNING, the rest DEBUG within the minute, as deploying.rst
    says of the stores' warnings a client can repeat."""
    caplog.set_level(logging.DEBUG, logger="wsgisession.stores.memcached")
    start = time.time() + 3600
    for i in range(100):  # about four times what fits
        log_in(store, start + i)
    made_room = [r.levelname for r in caplog.records if "item size" in r.getMessage()]
    assert len(made_room) > 10 and made_room.count("WARNING") == 1, made_room


@pytest.mark.slow
def test_a_user_at_the_item_size_logs_in_is_listed_and_revoked(
    store: MemcachedStore,
) -> None:
    with SessionMiddleware(lambda environ, start_response: [], store) as middleware:
        for _ in range(60):
            session = middleware.open_session()
            session["device"] = "probe"
            session.bind_user(USER)
        listed = middleware.user_sessions(USER)
        assert session.handle in {s.handle for s in listed}
        assert middleware.revoke_user_sessions(USER, keep=session) == len(listed) - 1
        assert [s.handle for s in middleware.user_sessions(USER)] == [session.handle]


def test_a_session_over_the_item_size_keeps_the_saved_one(
    store: MemcachedStore,
) -> None:
    key = log_in(store, time.time() + 3600)
    loaded = store.load(key)
    with pytest.raises(StoreUnavailable, match="too large"):
        store.update(key, lambda current: (b"x" * ITEM_SIZE, time.time() + 60), loaded)
    record = store.load(key)
    assert record is not None and record.payload == b"device"
    assert store.user_index_intact(USER, key)


def fill_to_the_brim(store: MemcachedStore, caplog: pytest.LogCaptureFixture) -> None:
    """Log ``USER`` in until the index is too full for one more pending entry:
    past a login that made room, up to one that did not need to."""
    caplog.set_level(logging.DEBUG, logger="wsgisession.stores.memcached")
    made_room = False
    for _ in range(200):
        warned = len(caplog.records)
        log_in(store, time.time() + 30 * 24 * 3600)
        if len(caplog.records) > warned:
            made_room = True
        elif made_room:
            return
    raise AssertionError("the index never filled up")


@pytest.mark.parametrize("login", ["bind_user", "cycle_key"])
def test_a_login_at_the_item_size_keeps_the_session_logging_in(
    store: MemcachedStore, caplog: pytest.LogCaptureFixture, login: str
) -> None:
    """A bound session moving to a new key (its user logs in again on that
    device, or the app calls cycle_key()) when the index is full and it is
    the session that expires soonest: making room ended that very session,
    so the move found its old record revoked (SessionInterrupted) and the
    user was logged out by their own login."""
    with SessionMiddleware(lambda environ, start_response: [], store) as middleware:
        device = middleware.open_session()
        device["device"] = "laptop"
        device.set_expiry(90 * 24 * 3600)
        device.bind_user(USER)
        fill_to_the_brim(store, caplog)
        device.set_expiry(3600)  # now the one that expires soonest
        device.save()
        if login == "bind_user":
            device.bind_user(USER)
        else:
            device.cycle_key()
        assert device["device"] == "laptop" and device.user_id == USER
        assert device.handle in {s.handle for s in middleware.user_sessions(USER)}


@pytest.mark.slow
def test_a_session_over_the_item_size_is_refused_and_the_record_kept(
    store: MemcachedStore,
) -> None:
    """As docs/stores.rst says: StoreUnavailable with the server's answer,
    the stored record as it was, and the server still in use."""
    key = generate_key()
    expires_at = time.time() + 3600
    assert store.create(key, b"small", expires_at) == key
    record = store.load(key)
    assert record is not None
    big = b"x" * (ITEM_SIZE * 2)
    with pytest.raises(StoreUnavailable, match="too large"):
        store.update(key, lambda payload: (big, expires_at), record)
    with pytest.raises(StoreUnavailable, match="too large"):
        store.create(generate_key(), big, expires_at)
    kept = store.load(key)
    assert kept is not None and kept.payload == b"small"
    other = generate_key()
    assert store.create(other, b"fits", expires_at) == other
