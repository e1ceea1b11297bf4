"""The same edge cases on every store, side by side: expiry at its
boundaries, unknown keys, the counts of the sweeps, a user's sessions after
their sessions expired, were flushed or cycled, user ids at their limits,
saves of a record another request deleted, and stores sharing a backing.

Every test runs on every server-side store (the memory, file and SQLite
stores, memcached and Redis alone and as a pool or cluster, the SQL store
on PostgreSQL, MariaDB and SQLite); where the stores are meant to differ
(the counts of stores that expire natively), the test says so by kind.
Time is moved with ``frozen_clock``; the servers are real.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    USER_SESSION_STORES,
    FakeClock,
    build_store,
    get,
    store_argument,
)

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted
from wsgisession.expiry import MAX_SECONDS
from wsgisession.keys import generate_key
from wsgisession.stores.base import Store, now

KINDS = list(USER_SESSION_STORES)
#: Stores whose server drops expired records itself: nothing for a sweep.
NATIVE_RECORDS = {"memcached", "memcached-pool", "redis", "redis-cluster"}
#: Stores whose sweep also prunes users' indexes and counts what it pruned.
COUNTS_INDEX_ENTRIES = {"redis", "redis-cluster"}
#: Stores whose key_prefix lets two apps share one server (memcached, Redis).
PREFIXED = {"memcached", "memcached-pool", "redis", "redis-cluster"}
#: Stores two middlewares can share through one path.
SHARED_PATHS = {"file", "sqlite", "sql-sqlite"}
#: Stores whose server also ends a record by its own (real) clock, in ms.
REAL_TIME_TTL = {"redis", "redis-cluster"}
YEAR = 365 * 86400


def plain_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    """An app that leaves the session alone."""
    start_response("200 OK", [])  # type: ignore[operator]
    return [b""]


class Backing:
    """A store of one kind, and what another store on its backing is built from."""

    def __init__(self, kind: str, argument: str) -> None:
        self.kind = kind
        self.argument = argument
        self.store = build_store(kind, argument)

    def middleware(self, **options: object) -> SessionMiddleware:
        """A middleware on this store with ``options``."""
        return SessionMiddleware(plain_app, self.store, **options)  # type: ignore[arg-type]

    def another_store(self, **options: object) -> Store:
        """A second store on the same backing (the caller closes it)."""
        return build_store(self.kind, self.argument, **options)


@pytest.fixture(params=KINDS)
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backing]:
    kind: str = request.param
    made = Backing(kind, store_argument(kind, request, tmp_path))
    yield made
    made.store.close()


def saved_key(
    middleware: SessionMiddleware, user: str | int | None = None, **data: object
) -> str:
    """The key of a new session holding ``data`` (bound to ``user`` if given)."""
    session = middleware.open_session()
    session.update(data or {"a": 1})
    if user is not None:
        session.bind_user(user)
    session.save()
    assert session.session_key is not None
    return session.session_key


def value_of(middleware: SessionMiddleware, key: str) -> object:
    """The value of ``a`` in the session ``key`` as a new request sees it."""
    return middleware.open_session(key).get("a")


# -- expiry at its boundaries ----------------------------------------------------


@pytest.mark.parametrize(
    ("ahead", "live"), [(-1.0, False), (0.0, False), (0.001, True), (1.0, True)]
)
def test_a_record_lives_exactly_until_its_expiry(
    backing: Backing, frozen_clock: FakeClock, ahead: float, live: bool
) -> None:
    """Redis also ends a record by its own clock, in real milliseconds: one
    given 1 ms of the test's frozen time was at times gone in real time
    before the test read it, so there the times ahead are 1000 times
    longer (the test's clock moves past them; Redis's TTL still runs, and
    the last create takes over the dead record)."""
    if backing.kind in REAL_TIME_TTL:
        ahead *= 1000
    store, key = backing.store, generate_key()
    assert store.create(key, b"record", now() + ahead) == key
    assert (store.load(key) is not None) is live
    assert store.exists(key) is live
    if live:
        frozen_clock.advance(ahead)
        assert store.load(key) is None
        assert store.exists(key) is False
    assert store.create(key, b"new", now() + 60) == key


def test_create_never_replaces_a_live_record(backing: Backing) -> None:
    """Not even with the same payload: the SQL store took that for its own
    insert run again and gave the record the new expiry."""
    store, key = backing.store, generate_key()
    expires_at = now() + 60
    assert store.create(key, b"payload", expires_at) == key
    assert store.create(key, b"other", now() + 600) is None
    assert store.create(key, b"payload", now() + 600) is None
    record = store.load(key)
    assert record is not None
    assert record.expires_at == pytest.approx(expires_at, abs=1e-6)


@pytest.mark.parametrize("cookie_age", [1, 10 * YEAR, MAX_SECONDS])
def test_cookie_age_ends_the_session_on_time(
    backing: Backing, frozen_clock: FakeClock, cookie_age: int
) -> None:
    middleware = backing.middleware(cookie_age=cookie_age)
    key = saved_key(middleware)
    frozen_clock.advance(cookie_age - 0.01)
    assert value_of(middleware, key) == 1
    frozen_clock.advance(0.02)
    assert value_of(middleware, key) is None


def test_cookie_age_zero_keeps_nothing(backing: Backing) -> None:
    middleware = backing.middleware(cookie_age=0)
    session = middleware.open_session()
    session["a"] = 1
    session.save()
    assert session.get_expiry_age() == 0
    key = session.session_key
    assert key is None or not backing.store.exists(key)


@pytest.mark.parametrize(
    ("expiry", "left"),
    [
        (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1), None),
        (0, 1209600),
        (datetime.timedelta(days=50 * 365), 50 * YEAR),
        (-10, None),
    ],
)
def test_set_expiry_at_its_edges(
    backing: Backing, frozen_clock: FakeClock, expiry: object, left: int | None
) -> None:
    middleware = backing.middleware()
    session = middleware.open_session()
    session["a"] = 1
    session.set_expiry(expiry)  # type: ignore[arg-type]
    session.save()
    key = session.session_key
    if left is None:
        assert key is None or not backing.store.exists(key)
        return
    assert key is not None and session.get_expiry_age() == left
    frozen_clock.advance(left - 1)
    assert value_of(middleware, key) == 1
    frozen_clock.advance(2)
    assert value_of(middleware, key) is None


# -- unknown keys and the sweeps ----------------------------------------------------


def test_unknown_keys_are_absent_and_deleting_them_is_not_an_error(
    backing: Backing,
) -> None:
    store = backing.store
    assert store.exists(generate_key()) is False
    assert store.exists("not a key") is False
    store.delete(generate_key())
    assert store.load(generate_key()) is None


def test_the_sweeps_count_what_they_removed(
    backing: Backing, frozen_clock: FakeClock
) -> None:
    """Three dead sessions, two of them bound, and one live, swept and then
    cleared, twice: the stores that remove records count records; Redis
    counts the index entries it pruned (none in ``clear_expired()``);
    memcached removes nothing."""
    short, long = backing.middleware(cookie_age=10), backing.middleware()
    live = saved_key(long, "sweeps")
    counts = []
    for sweep in (backing.store.clear_expired, lambda: backing.store.sweep_expired(10)):
        dead = [saved_key(short, "sweeps"), saved_key(short, "sweeps")]
        dead.append(saved_key(short))
        frozen_clock.advance(11)
        assert all(value_of(short, key) is None for key in dead)
        if backing.kind in NATIVE_RECORDS:  # what the server does at their TTL
            for key in dead:
                backing.store.delete(key)
        counts.append(sweep())
    if backing.kind in COUNTS_INDEX_ENTRIES:
        assert counts == [0, 2]
    elif backing.kind in NATIVE_RECORDS:
        assert counts == [0, 0]
    else:
        assert counts == [3, 3]
    assert (backing.store.clear_expired(), backing.store.sweep_expired(10)) == (0, 0)
    assert value_of(long, live) == 1
    assert len(long.user_sessions("sweeps")) == 1


# -- a user's sessions ------------------------------------------------------------


def test_a_users_expired_sessions_are_neither_listed_nor_counted(
    backing: Backing, frozen_clock: FakeClock
) -> None:
    middleware = backing.middleware(cookie_age=60)
    first = middleware.open_session()
    first["a"] = 1
    first.bind_user("expired")
    first.save()
    saved_key(middleware, "expired")
    assert len(middleware.user_sessions("expired")) == 2
    frozen_clock.advance(61)
    assert middleware.user_sessions("expired") == []
    assert first.handle is not None
    assert middleware.revoke_user_session("expired", first.handle) is False
    assert middleware.revoke_user_sessions("expired", keep=first) == 0


def test_a_flushed_session_is_gone_from_its_users_sessions(backing: Backing) -> None:
    middleware = backing.middleware()
    flushed = middleware.open_session()
    flushed["a"] = 1
    flushed.bind_user("flushed")
    flushed.save()
    handle = flushed.handle
    assert handle is not None
    other = saved_key(middleware, "flushed")
    flushed.flush()
    assert len(middleware.user_sessions("flushed")) == 1
    assert middleware.revoke_user_session("flushed", handle) is False
    assert middleware.revoke_user_sessions("flushed", keep=handle) == 1
    assert value_of(middleware, other) is None


def test_a_cycled_session_is_known_by_its_new_handle_only(backing: Backing) -> None:
    middleware = backing.middleware()
    cycled = middleware.open_session()
    cycled["a"] = 1
    cycled.bind_user("cycled")
    cycled.save()
    old_handle = cycled.handle
    other = saved_key(middleware, "cycled")
    cycled.cycle_key()
    cycled.save()
    assert old_handle is not None and cycled.handle != old_handle
    assert len(middleware.user_sessions("cycled")) == 2
    assert middleware.revoke_user_session("cycled", old_handle) is False
    assert middleware.revoke_user_sessions("cycled", keep=cycled) == 1
    assert value_of(middleware, other) is None
    assert cycled.session_key is not None
    assert value_of(middleware, cycled.session_key) == 1


@pytest.mark.parametrize(
    "user", ["u" * 100_000, "ユーザー🙂\u0301 é", "007", 7, "a\x00b"]
)
def test_user_ids_at_their_limits(backing: Backing, user: str | int) -> None:
    middleware = backing.middleware()
    key = saved_key(middleware, user)
    assert middleware.open_session(key).user_id == str(user)
    assert len(middleware.user_sessions(user)) == 1
    if user == "007":
        assert middleware.user_sessions(7) == []
    assert middleware.revoke_user_sessions(user) == 1
    assert middleware.user_sessions(user) == []
    assert middleware.revoke_user_sessions("nobody") == 0
    assert middleware.revoke_user_session("nobody", "x" * 22) is False


# -- saves of a record another request deleted ----------------------------------------


def test_cycle_key_and_flush_after_another_request_deleted_the_record(
    backing: Backing,
) -> None:
    middleware = backing.middleware()
    for action in ("cycle_key", "flush"):
        key = saved_key(middleware)
        session = middleware.open_session(key)
        assert session.get("a") == 1
        backing.store.delete(key)
        if action == "cycle_key":
            with pytest.raises(SessionInterrupted):
                session.cycle_key()
        else:
            session.flush()
            assert session.session_key is None


def test_saving_twice_in_one_request_keeps_the_key_and_the_last_value(
    backing: Backing,
) -> None:
    middleware = backing.middleware()
    session = middleware.open_session()
    session["a"] = 1
    session.save()
    first = session.session_key
    session["a"] = 2
    session.save()
    assert first is not None and session.session_key == first
    assert value_of(middleware, first) == 2


def test_a_session_created_under_the_request_lock_exists_at_once(
    backing: Backing,
) -> None:
    seen: list[bool] = []

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        session = environ["wsgisession"]
        session["a"] = 1  # type: ignore[index]
        session.save()  # type: ignore[attr-defined]
        seen.append(backing.store.exists(session.session_key))  # type: ignore[attr-defined]
        start_response("200 OK", [])  # type: ignore[operator]
        return [b""]

    status, _ = get(SessionMiddleware(app, backing.store, lock=True))
    assert (status, seen) == ("200 OK", [True])


# -- two apps on one backing --------------------------------------------------------


@pytest.mark.parametrize("backing", sorted(PREFIXED), indirect=True)
def test_key_prefixes_keep_apps_and_their_users_apart(backing: Backing) -> None:
    with (
        backing.another_store(key_prefix="one:") as one,
        backing.another_store(key_prefix="two:") as two,
    ):
        first, second = (SessionMiddleware(plain_app, store) for store in (one, two))
        mine, theirs = saved_key(first, "shared"), saved_key(second, "shared", a=2)
        assert value_of(second, mine) is None and value_of(first, theirs) is None
        (listed,) = second.user_sessions("shared")
        assert first.revoke_user_session("shared", listed.handle) is False
        assert first.revoke_user_sessions("shared") == 1
        assert value_of(second, theirs) == 2
        assert len(second.user_sessions("shared")) == 1


@pytest.mark.parametrize("backing", sorted(SHARED_PATHS), indirect=True)
def test_two_middlewares_with_other_settings_share_a_path(
    backing: Backing, frozen_clock: FakeClock
) -> None:
    with backing.another_store() as other_store:
        short = backing.middleware(cookie_age=60)
        long = SessionMiddleware(plain_app, other_store, cookie_age=3600)
        key = saved_key(short, "shared")
        assert len(long.user_sessions("shared")) == 1
        session = long.open_session(key)
        session["b"] = 2
        session.save()
        frozen_clock.advance(61)
        assert value_of(short, key) == 1
        assert backing.store.clear_expired() == 0
        assert long.revoke_user_sessions("shared") == 1
        assert value_of(short, key) is None
