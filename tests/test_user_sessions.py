"""A user's sessions ("log out everywhere", "your devices"), on every store that has them.

Each test runs on the stores of ``USER_SESSION_STORES`` (tests/helpers.py)
through the public API: ``session.bind_user/user_id/handle`` and the
middleware's ``user_sessions``, ``revoke_user_sessions`` and
``revoke_user_session``; the raw checks read the backing through the
entry's dump function.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import webtest
from helpers import (
    USER_SESSION_STORES,
    build_store,
    fake_clock,
    store_argument,
    user_app,
)

from wsgisession import SessionInterrupted, SessionMiddleware, UserSession
from wsgisession.keys import storage_key
from wsgisession.session import Session
from wsgisession.stores.base import Store
from wsgisession.stores.memcached import CLOCK_MARGIN

KINDS = list(USER_SESSION_STORES)
SHARED = [kind for kind in KINDS if kind != "memory"]  # shared between processes
USER = "alice@example.org"
#: Seconds a session of the expiry test lives: its logins and a dump fit in it.
SHORT_LIFETIME = 3


@dataclass
class Site:
    """A middleware on one store, and what the backing looks like from outside."""

    kind: str
    argument: str
    middleware: SessionMiddleware

    @property
    def store(self) -> Store:
        return self.middleware.store

    def dump(self) -> bytes:
        return USER_SESSION_STORES[self.kind](self.store, self.argument)

    def client(self) -> webtest.TestApp:
        return webtest.TestApp(self.middleware)

    def session(self, key: str | None = None) -> Session:
        return self.middleware.open_session(key)


def patient_options(kind: str) -> dict[str, object]:
    """Options of a store that waits for a busy backing: four threads or
    processes saving back to back into one SQLite file (rollback journal) on
    a loaded machine kept another writer out past the default 5 s (a revoke
    or a save failed with "database is locked")."""
    return {"timeout": 60.0} if kind == "sql-sqlite" else {}


def open_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    kind = request.param
    argument = store_argument(kind, request, tmp_path)
    store = build_store(kind, argument, **patient_options(kind))
    with SessionMiddleware(user_app, store) as middleware:
        yield Site(kind, argument, middleware)


@pytest.fixture(params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    yield from open_site(request, tmp_path)


@pytest.fixture(params=SHARED)
def shared_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    yield from open_site(request, tmp_path)


def login(site: Site, user: str = USER, agent: str = "test") -> webtest.TestApp:
    client = site.client()
    client.get("/", {"login": user}, headers={"User-Agent": agent})
    return client


def state(client: webtest.TestApp) -> list[str]:
    """The user id, handle and value the app sees for this client."""
    return client.get("/").text.split(" ")


def cookie_of(client: webtest.TestApp) -> str:
    return client.cookies["sessionid"]


# -- binding, listing, handles ----------------------------------------------------


def test_bind_user_cycles_the_key_and_lists_the_session(site: Site) -> None:
    client = site.client()
    client.get("/", {"set": "before"})
    anonymous = cookie_of(client)
    client.get("/", {"login": USER}, headers={"User-Agent": "Firefox"})
    key = cookie_of(client)
    assert key != anonymous
    assert site.store.load(anonymous) is None
    user, handle, value = state(client)
    assert (user, value) == (USER, "before")
    [listed] = site.middleware.user_sessions(USER)
    assert isinstance(listed, UserSession)
    assert listed.handle == handle != key
    assert listed.data["agent"] == "Firefox"
    assert listed.created <= listed.saved_at < listed.expires_at
    times = (listed.created, listed.saved_at, listed.expires_at)
    assert [type(t) for t in times] == [float] * 3, "Unix times, floats (API.md)"
    with pytest.raises(TypeError):
        listed.data["agent"] = "changed"  # type: ignore[index]
    assert "Firefox" not in repr(listed)


def test_several_devices_are_listed_newest_first(site: Site) -> None:
    with fake_clock() as clock:
        first = login(site, agent="laptop")
        clock.advance(10)
        second = login(site, agent="phone")
        clock.advance(10)
        first.get("/", {"set": "x"})
    listed = site.middleware.user_sessions(USER)
    assert [s.data["agent"] for s in listed] == ["laptop", "phone"]
    assert [s.handle for s in listed] == [state(first)[1], state(second)[1]]
    assert site.middleware.user_sessions("bob") == []


def test_int_user_ids_are_their_decimal_string(site: Site) -> None:
    session = site.session()
    session["x"] = 1
    session.bind_user(42)
    assert session.user_id == "42"
    assert [s.handle for s in site.middleware.user_sessions("42")] == [session.handle]
    assert [s.handle for s in site.middleware.user_sessions(42)] == [session.handle]


BAD_USER_IDS = {
    "empty": "",
    "lone surrogate": "al\ud800ice",  # json.loads can make one
    "None": None,
    "float": 1.5,
    "bool": True,
    "bytes": b"alice",
    "list": ["a"],
}


@pytest.mark.parametrize(  # checked before any store is asked: the quick loop
    ("site", "bad"),  # tries each bad id on one store, the full run on every one
    [
        pytest.param(
            kind,
            bad,
            id=f"{kind}-{label}",
            marks=() if kind == "memory" else pytest.mark.slow,
        )
        for kind in KINDS
        for label, bad in BAD_USER_IDS.items()
    ],
    indirect=["site"],
)
def test_bad_user_ids_are_refused(site: Site, bad: object) -> None:
    session = site.session()
    session["x"] = 1
    session.save()
    key = session.session_key
    error = ValueError if isinstance(bad, str) else TypeError
    with pytest.raises(error, match="user_id"):  # not a codec's error
        session.bind_user(bad)  # type: ignore[arg-type]
    with pytest.raises(error, match="user_id"):
        site.middleware.user_sessions(bad)  # type: ignore[arg-type]
    assert session.session_key == key and session.user_id is None


def test_handle_is_stable_across_saves_and_changes_with_cycle_key(site: Site) -> None:
    client = login(site)
    handle = state(client)[1]
    client.get("/", {"set": "1"})
    client.get("/", {"set": "2"})
    assert state(client)[1] == handle
    client.get("/", {"cycle": ""})
    cycled = state(client)[1]
    assert cycled != handle
    assert [s.handle for s in site.middleware.user_sessions(USER)] == [cycled]
    assert state(client)[0] == USER  # cycle_key keeps the owner


def test_a_handle_is_useless_as_a_cookie(site: Site) -> None:
    handle = state(login(site))[1]
    stranger = site.client()
    stranger.set_cookie("sessionid", handle)
    assert state(stranger) == ["None", "None", "None"]
    assert site.session(handle).user_id is None


def test_unsaved_and_unbound_sessions(site: Site) -> None:
    session = site.session()
    assert session.handle is None and session.user_id is None
    session["x"] = 1
    session.save()
    assert session.handle is not None and session.user_id is None


def test_flush_unbinds_and_the_session_leaves_the_listing(site: Site) -> None:
    client = login(site)
    other = login(site)
    client.get("/", {"logout": ""})
    assert state(client)[0] == "None"
    assert [s.handle for s in site.middleware.user_sessions(USER)] == [state(other)[1]]


def test_binding_to_another_user_moves_the_session(site: Site) -> None:
    client = login(site, "alice")
    client.get("/", {"login": "bob"})
    assert site.middleware.user_sessions("alice") == []
    assert [s.handle for s in site.middleware.user_sessions("bob")] == [
        state(client)[1]
    ]


def test_binding_to_another_user_keeps_nothing_of_the_first(site: Site) -> None:
    """As Django's login(): bob logging in on alice's session (a shared
    browser she did not log out of) gets none of her data (her CSRF token,
    which whoever used the browser before him may know), nor her created."""
    alice = site.session()
    alice["_csrft_"] = "known-to-alice"
    alice.bind_user("alice")
    alice.save()
    bob = site.session(alice.session_key)
    bob.bind_user("bob")
    bob.save()
    assert dict(site.session(bob.session_key)) == {}
    assert bob.created > alice.created
    assert site.middleware.user_sessions("alice") == []
    assert [dict(s.data) for s in site.middleware.user_sessions("bob")] == [{}]


# -- revoking -------------------------------------------------------------------


def test_revoke_all_ends_every_session_of_the_user(site: Site) -> None:
    devices = [login(site) for _ in range(3)]
    bystander = login(site, "bob")
    assert site.middleware.revoke_user_sessions(USER) == 3
    response = devices[0].get("/")
    assert response.text == "None None None"
    assert response.headers["Set-Cookie"].startswith("sessionid=; ")  # deleted
    for device in devices:
        assert state(device) == ["None", "None", "None"]
    assert site.middleware.user_sessions(USER) == []
    assert state(bystander)[0] == "bob"
    assert site.middleware.revoke_user_sessions(USER) == 0


@pytest.mark.parametrize("by", ["session", "handle"])
def test_revoke_all_but_the_current_one(site: Site, by: str) -> None:
    current, other = login(site), login(site)
    session = site.session(cookie_of(current))
    keep = session if by == "session" else session.handle
    assert site.middleware.revoke_user_sessions(USER, keep=keep) == 1
    assert state(current)[0] == USER
    assert state(other)[0] == "None"
    assert [s.handle for s in site.middleware.user_sessions(USER)] == [session.handle]


def test_revoke_one_session_by_handle(site: Site) -> None:
    phone, laptop = login(site), login(site)
    handle = state(phone)[1]
    assert site.middleware.revoke_user_session(USER, handle) is True
    assert site.middleware.revoke_user_session(USER, handle) is False
    assert site.middleware.revoke_user_session("bob", state(laptop)[1]) is False
    assert state(phone)[0] == "None"
    assert state(laptop)[0] == USER


def test_a_save_in_flight_cannot_resurrect_a_revoked_session(site: Site) -> None:
    key = cookie_of(login(site))
    in_flight = site.session(key)
    in_flight["late"] = "write"  # loaded before the revocation
    site.middleware.revoke_user_sessions(USER)
    with pytest.raises(SessionInterrupted):
        in_flight.save()
    assert site.store.load(key) is None
    assert site.middleware.user_sessions(USER) == []


@pytest.mark.parametrize("change", ["cycle_key", "bind_user"])
def test_a_key_change_in_flight_cannot_resurrect_a_revoked_session(
    site: Site, change: str
) -> None:
    key = cookie_of(login(site))
    in_flight = site.session(key)
    in_flight.load()
    site.middleware.revoke_user_sessions(USER)
    with pytest.raises(SessionInterrupted):
        if change == "cycle_key":
            in_flight.cycle_key()
        else:
            in_flight.bind_user(USER)
    assert site.middleware.user_sessions(USER) == []
    assert in_flight.session_key is None and in_flight.user_id is None


# -- the index ---------------------------------------------------------------------


def test_the_backing_never_holds_raw_ids(site: Site) -> None:
    clients = [login(site, user) for user in ("alice", "bob", "alice")]
    keys = [cookie_of(c) for c in clients]
    dump = site.dump()
    assert all(storage_key(key).encode() in dump for key in keys)  # the dump works
    for key in keys:
        assert key.encode() not in dump


def test_expired_sessions_leave_the_listing(site: Site) -> None:
    with fake_clock() as clock:
        short = site.session()
        short.set_expiry(60)
        short.bind_user(USER)
        lasting = site.session()
        lasting.bind_user(USER)
        clock.advance(61)
        assert [s.handle for s in site.middleware.user_sessions(USER)] == [
            lasting.handle
        ]
        assert site.middleware.revoke_user_sessions(USER) == 1


@pytest.mark.slow
def test_expired_sessions_leave_the_backing(site: Site) -> None:
    """By the server's TTL or the sweep, then the listing prunes the index.

    The sessions live long enough to be all there once the last is made and
    the backing dumped: on a loaded machine, three logins on a Redis Cluster
    took longer than a one-second lifetime, and the third login pruned the
    first, dead by then, from the user's index (Redis had dropped its record)."""
    sessions = []
    for _ in range(3):
        session = site.session()
        session.set_expiry(SHORT_LIFETIME)
        session.bind_user(USER)
        sessions.append(session)
    all_expired = time.monotonic() + SHORT_LIFETIME
    names = [storage_key(s.session_key or "").encode() for s in sessions]
    dump = site.dump()
    assert [name for name in names if name not in dump] == []
    # memcached keeps an item CLOCK_MARGIN seconds past its header's time,
    # on a clock that lags by up to one.
    margin = 1.1 + (CLOCK_MARGIN + 1 if "memcached" in site.kind else 0)
    time.sleep(max(0.0, all_expired + margin - time.monotonic()))
    site.store.clear_expired()
    assert site.middleware.user_sessions(USER) == []
    dump = site.dump()
    assert not [name for name in names if name in dump]


# -- concurrency -------------------------------------------------------------------


def busy_device(
    store: Store, key: str, stop_at: float, keys: list[str], started=None
) -> None:
    """Requests of one session until it is revoked: saves, and now and then a
    new key; every key it ever had goes into ``keys``."""
    middleware = SessionMiddleware(user_app, store)
    rounds = 0
    while time.time() < stop_at:
        rounds += 1
        session = middleware.open_session(key)
        try:
            session["n"] = session.get("n", 0) + 1
            if session.user_id is None:
                return  # revoked: the next request finds an empty session
            if rounds % 3 == 0:
                session.cycle_key()
                key = session.session_key or key
                keys.append(key)
            else:
                session.save()
            if rounds == 1 and started is not None:
                started.put(key)
        except SessionInterrupted:
            return


def assert_all_revoked(site: Site, keys: list[str]) -> None:
    assert site.middleware.user_sessions(USER) == []
    alive = [key for key in keys if site.store.load(key) is not None]
    assert alive == []


@pytest.mark.slow
def test_revocation_is_final_with_threads_in_flight(site: Site) -> None:
    keys = [cookie_of(login(site)) for _ in range(4)]
    seen = [[key] for key in keys]
    stop_at = time.time() + 10
    threads = [
        threading.Thread(target=busy_device, args=(site.store, key, stop_at, mine))
        for key, mine in zip(keys, seen, strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    # A session caught between its two records by cycle_key() counts twice.
    assert site.middleware.revoke_user_sessions(USER) >= 1
    for thread in threads:
        thread.join()
    assert_all_revoked(site, [key for mine in seen for key in mine])


def _device_process(
    kind: str, argument: str, key: str, stop_at: float, started, out
) -> None:
    keys = [key]
    with build_store(kind, argument, **patient_options(kind)) as store:
        busy_device(store, key, stop_at, keys, started)
    out.put(keys)


@pytest.mark.slow
def test_revocation_is_final_with_processes_in_flight(shared_site: Site) -> None:
    site = shared_site
    keys = [cookie_of(login(site)) for _ in range(3)]
    context = multiprocessing.get_context("spawn")
    started, out = context.Queue(), context.Queue()
    stop_at = time.time() + 30
    processes = [
        context.Process(
            target=_device_process,
            args=(site.kind, site.argument, key, stop_at, started, out),
        )
        for key in keys
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            started.get(timeout=30)  # every child is saving its session
        time.sleep(0.1)
        assert site.middleware.revoke_user_sessions(USER) >= 1
        seen = [key for _ in processes for key in out.get(timeout=60)]
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
    finally:  # a failure must not leave children for pytest's exit to wait on
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert_all_revoked(site, seen)


def test_clear_unbinds_so_a_logout_by_clear_is_one(site: Site) -> None:
    """``clear()`` drops the owner with the data, as Django's drops the login
    kept among them: a logout written ``session.clear()`` (then a "logged
    out" message stored) must not leave ``user_id`` set, which a page checks
    (``user_id is None``: 401), nor the session among the user's devices."""
    client = login(site)
    other = login(site)
    session = site.session(cookie_of(client))
    session.clear()
    session["value"] = "logged-out"
    session.save()
    assert state(client)[0] == "None"
    assert state(client)[2] == "logged-out"
    assert [s.handle for s in site.middleware.user_sessions(USER)] == [state(other)[1]]
    assert site.middleware.revoke_user_sessions(USER) == 1
    assert state(client)[2] == "logged-out"  # no longer the user's to revoke


def test_a_request_in_flight_does_not_bind_a_cleared_session_again(site: Site) -> None:
    """A request that loaded the session before the logout by ``clear()`` and
    saves after it keeps the owner the store holds now: none."""
    key = cookie_of(login(site))
    slow = site.session(key)
    slow["value"] = "late"
    logout = site.session(key)
    logout.clear()
    logout.save()
    slow.save()
    assert slow.user_id is None
    assert site.session(key).user_id is None
    assert site.middleware.user_sessions(USER) == []
