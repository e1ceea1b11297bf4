"""Promises of API.md and the docs at their edges, which no other test checked
(a hand-made mutation review found each: the code could change and no test
failed).

Each test names the promise it holds (API.md or the docs) and the change to
the code that it catches: a malformed id given to ``open_session`` never
reaches a store; a second save after ``clear()`` in one request merges
what another request saved in between; a ``clear()`` merged with another
request's save unbinds the session; an ``absolute_timeout`` set after
sessions were saved ends them too, at the very second; ``reissue_time``
re-saves a session whose last save is *at least* that old; ``Vary: *``
gets no ``Cookie``; ``set_expiry()`` takes the whole documented range;
``save()`` on the cookie store refuses every cookie over the limit; a
listed session ends at its ``absolute_timeout``; a request lock is taken
over once its ``ttl`` has passed.

Real stores and the public API throughout; time moves with ``frozen_clock``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import webtest
from helpers import FakeClock, make_store

from wsgisession import SessionMiddleware
from wsgisession.errors import COOKIE_SIZE_LIMIT, LockTimeout, SessionCookieTooLarge
from wsgisession.expiry import MAX_SECONDS
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

LOCAL = ["memory", "file", "sqlite"]
SECRET = "s3cret-395ca18d5721f5d248ddac6221bd09020dd"


def _app(environ, start_response):
    """Reads the session (``n``) and answers with it."""
    session = environ["wsgisession"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("n")).encode()]


@pytest.fixture(params=LOCAL)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(request.param, tmp_path)


def _whole_second(clock: FakeClock) -> float:
    """Stand the clock on a whole second (save times keep microseconds)."""
    clock.now = float(int(clock.now))
    return clock.now


# -- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_key",
    ["é" * 43, "\ud800" * 43, "ü"],
    ids=["non-ascii", "lone surrogates", "short non-ascii"],
)
def test_open_session_with_a_malformed_id_starts_a_new_session(
    store: Store, session_key: str
) -> None:
    """API.md section 4: the id is validated before any store is asked about
    it. ``open_session()`` handed such an id to the store, whose hashing of
    it (ASCII) raised UnicodeEncodeError, if ``Session`` skipped the check."""
    middleware = SessionMiddleware(_app, store=store)
    session = middleware.open_session(session_key)
    assert session.session_key is None
    assert dict(session) == {}
    session["n"] = 1
    session.save()
    assert session.session_key not in (None, session_key)


# -- merges -----------------------------------------------------------------------


def test_a_save_after_a_saved_clear_keeps_what_another_request_saved_meanwhile(
    store: Store,
) -> None:
    """A request that cleared its session and saved, then set a key and saved
    again, must apply only that key to the record as it is now: its second
    save emptied the record again (the clear was still pending), dropping
    what another request had saved in between."""
    middleware = SessionMiddleware(_app, store=store)
    first = middleware.open_session()
    first["n"] = 1
    first.save()
    key = first.session_key
    assert key is not None

    this = middleware.open_session(key)
    this.clear()
    this.save()
    other = middleware.open_session(key)
    other["other"] = 2
    other.save()
    this["mine"] = 3
    this.save()
    assert dict(middleware.open_session(key)) == {"other": 2, "mine": 3}


def test_a_clear_merged_with_another_requests_save_unbinds_the_session(
    store: Store,
) -> None:
    """``clear()`` drops the owner (a logout, as in Django); when another
    request saved the record meanwhile, the merged save kept the stored
    owner, so the emptied session stayed the user's and was listed."""
    middleware = SessionMiddleware(_app, store=store)
    login = middleware.open_session()
    login["n"] = 1
    login.bind_user("ann")
    key = login.session_key
    assert key is not None

    logout = middleware.open_session(key)
    logout.load()
    other = middleware.open_session(key)
    other["seen"] = True
    other.save()
    logout.clear()
    logout.save()
    assert middleware.open_session(key).user_id is None
    assert middleware.user_sessions("ann") == []


# -- absolute_timeout ---------------------------------------------------------------


def test_an_absolute_timeout_set_later_ends_older_sessions_at_the_second(
    store: Store, frozen_clock: FakeClock
) -> None:
    """``absolute_timeout``: seconds since creation after which a session is
    dead whatever its activity. A session saved before the site set it has
    a record that lives on (``cookie_age``): the load ends it all the same,
    at ``created + absolute_timeout`` exactly, where the store ends the
    record of a session saved under the setting."""
    created = _whole_second(frozen_clock)
    before = SessionMiddleware(_app, store=store)
    session = before.open_session()
    session["n"] = 1
    session.save()
    key = session.session_key
    strict = SessionMiddleware(_app, store=store, absolute_timeout=3600)
    frozen_clock.now = created + 3599.5
    assert strict.open_session(key).get("n") == 1
    frozen_clock.now = created + 3600
    ended = strict.open_session(key)
    assert ended.get("n") is None
    assert ended.session_key is None


def test_a_listing_and_a_revocation_end_a_session_at_its_absolute_timeout(
    store: Store, frozen_clock: FakeClock
) -> None:
    """Sessions bound before the site set ``absolute_timeout``: the one past
    it is not listed and not counted as revoked (API.md: the number of live
    sessions), and the listed one's ``expires_at`` is its absolute timeout,
    not its record's expiry."""
    start = _whole_second(frozen_clock)
    before = SessionMiddleware(_app, store=store)
    for _ in range(2):
        session = before.open_session()
        session["n"] = 1
        session.bind_user("ann")
        frozen_clock.advance(100)
    strict = SessionMiddleware(_app, store=store, absolute_timeout=150)
    frozen_clock.now = start + 200  # the first ended at start + 150
    (listed,) = strict.user_sessions("ann")
    assert listed.created == start + 100
    assert listed.expires_at == start + 250
    assert strict.revoke_user_sessions("ann") == 1


# -- reissue_time -------------------------------------------------------------------


def test_reissue_time_resaves_a_session_whose_last_save_is_exactly_that_old(
    frozen_clock: FakeClock, tmp_path: Path
) -> None:
    """docs/session.rst: "a request that reads the session saves it again if
    its last save is at least that many seconds old"."""
    start = _whole_second(frozen_clock)
    middleware = SessionMiddleware(
        _app, store=make_store("memory", tmp_path), reissue_time=60
    )
    session = middleware.open_session()
    session["n"] = 1
    session.save()
    client = webtest.TestApp(middleware)
    client.set_cookie("sessionid", session.session_key)
    frozen_clock.now = start + 59.5
    assert "Set-Cookie" not in client.get("/").headers
    frozen_clock.now = start + 60
    response = client.get("/")
    assert response.text == "1"
    assert "Set-Cookie" in response.headers


# -- headers ------------------------------------------------------------------------


def test_vary_star_is_left_as_it_is(tmp_path: Path) -> None:
    """``Vary: *`` already says the response varies by everything: ``Cookie``
    is not added to it (cache_headers.add_session_headers)."""

    def app(environ, start_response):
        environ["wsgisession"]["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Vary", "*")])
        return [b"ok"]

    client = webtest.TestApp(
        SessionMiddleware(app, store=make_store("memory", tmp_path))
    )
    response = client.get("/")
    assert "Set-Cookie" in response.headers
    assert response.headers.getall("Vary") == ["*"]


# -- set_expiry's range -----------------------------------------------------------


def test_set_expiry_takes_the_whole_documented_range_of_seconds(
    store: Store, frozen_clock: FakeClock
) -> None:
    """set_expiry() takes "seconds as an int from -MAX_SECONDS to MAX_SECONDS"
    (its error message, expiry.MAX_SECONDS): both ends included, a second
    more refused."""
    middleware = SessionMiddleware(_app, store=store)
    session = middleware.open_session()
    session["n"] = 1
    for inside in (MAX_SECONDS, -MAX_SECONDS):
        session.set_expiry(inside)
    for outside in (MAX_SECONDS + 1, -MAX_SECONDS - 1):
        with pytest.raises(ValueError, match="out of range"):
            session.set_expiry(outside)
    session.set_expiry(MAX_SECONDS)
    session.save()
    assert session.get_expiry_age() == MAX_SECONDS
    frozen_clock.advance(365 * 86400)
    assert middleware.open_session(session.session_key).get("n") == 1


# -- the cookie store's size limit --------------------------------------------------


def test_the_cookie_store_save_refuses_every_cookie_over_the_limit() -> None:
    """API.md: SessionCookieTooLarge is raised by ``save()`` when the cookie
    would exceed 4093 bytes. Around the limit, each size either fails in the
    app's own save, or the response sends a cookie that fits: none passes
    the save and then fails in the response (the save's check of the header
    is skipped only when a bound on its size says it fits)."""
    store = SignedCookieStore(SECRET, compress_threshold=10**6)  # sizes as written

    def app(environ, start_response):
        session = environ["wsgisession"]
        session["blob"] = "x" * int(environ["QUERY_STRING"])
        try:
            session.save()
        except SessionCookieTooLarge:
            session.flush()
            body = b"refused"
        else:
            body = b"saved"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    client = webtest.TestApp(SessionMiddleware(app, store=store))
    outcomes = set()
    for size in range(2800, 2900):
        response = client.get(f"/?{size}")
        outcomes.add(response.text)
        if response.text == "saved":
            (cookie,) = response.headers.getall("Set-Cookie")
            assert len(cookie) <= COOKIE_SIZE_LIMIT
        client.reset()
    assert outcomes == {"saved", "refused"}  # the range crosses the limit


# -- request locks ------------------------------------------------------------------


def test_a_request_lock_is_taken_over_once_exactly_its_ttl_has_passed(
    store: Store, frozen_clock: FakeClock
) -> None:
    """API.md section 8: a holder loses its lock after ``lock_ttl`` at the
    latest, on every store: with the clock standing at the holder's
    ``ttl``, a waiter takes the lock over instead of timing out."""
    key = generate_key()
    holder = store.lock(key, 0.05, 10.0)
    holder.__enter__()
    try:
        frozen_clock.advance(9.5)
        with pytest.raises(LockTimeout), store.lock(key, 0.05, 10.0):
            pass
        frozen_clock.advance(0.5)
        with store.lock(key, 0.2, 10.0):
            pass
    finally:
        holder.__exit__(None, None, None)


# -- expired records ----------------------------------------------------------------


def test_deleting_an_expired_record_reports_no_live_one(
    store: Store, frozen_clock: FakeClock
) -> None:
    """``delete_record()`` says whether a *live* record was there (the count
    ``revoke_user_sessions`` returns): a record whose expiry has come, not
    yet swept, is removed but not reported."""
    key = generate_key()
    name = storage_key(key)
    assert store.create_user_session("ann", key, b"{}", frozen_clock.now + 10) == key
    frozen_clock.advance(10)
    assert store.delete_record(name) is False
    assert store.delete_record(name) is False


def test_a_signed_cookie_ends_at_its_moment(frozen_clock: FakeClock) -> None:
    """A session set to expire at a moment is dead from that moment on, on
    the cookie store as on the server-side ones (test_expiry_moments): its
    cookie's signed expiry is refused once the clock reaches it."""
    start = _whole_second(frozen_clock)
    middleware = SessionMiddleware(_app, store=SignedCookieStore(SECRET))
    session = middleware.open_session()
    session["n"] = 1
    session.set_expiry(datetime.datetime.fromtimestamp(start + 60, datetime.UTC))
    session.save()
    key = session.session_key
    frozen_clock.now = start + 59.5
    assert middleware.open_session(key).get("n") == 1
    frozen_clock.now = start + 60
    assert middleware.open_session(key).get("n") is None
