"""SQLStore after a dropped connection whose INSERT of a new session had
committed (only the reply was lost): the statement runs again on a fresh
connection, and the row it meets is the session's own, not a key taken
by someone else.

The test runs through the TCP proxy of ``test_lock_faults`` in front of
the real PostgreSQL server: once armed, it passes the session row's
INSERT to the server, waits for the commit, then closes the client's
connection instead of passing the reply on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import call, get, later, user_app
from reply_dropping_proxy import ReplyDroppingProxy
from sql_support import sql_url
from sqlalchemy.engine import make_url
from test_lock_faults import READY_FOR_QUERY, insert_dropping_proxy

from wsgisession import SessionMiddleware
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore

# Every test reaches PostgreSQL.
pytestmark = pytest.mark.slow


@pytest.fixture
def proxied(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SQLStore, ReplyDroppingProxy]]:
    """A store reaching PostgreSQL through a proxy that drops the reply of
    the next INSERT into the sessions table once armed."""
    url = make_url(sql_url("sql-postgresql", request, tmp_path))
    target = (url.host or "127.0.0.1", url.port or 5432)
    proxy = insert_dropping_proxy(target, table=b"wsgisession_sessions ")
    store = SQLStore(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    store.load(generate_key())  # connected, tables known
    try:
        yield store, proxy
    finally:
        store.close()
        proxy.close()


def test_a_new_session_whose_reply_was_lost_is_still_created(
    proxied: tuple[SQLStore, ReplyDroppingProxy],
) -> None:
    store, proxy = proxied
    key = generate_key()
    proxy.armed.set()
    created = store.create(key, b"first visit", later())
    assert proxy.dropped.is_set(), "the proxy never cut the connection"
    assert created == key  # not "taken" by its own row: no orphan, no new key
    record = store.load(key)
    assert record is not None and record.payload == b"first visit"


def test_a_login_whose_reply_was_lost_is_listed_once(
    proxied: tuple[SQLStore, ReplyDroppingProxy],
) -> None:
    """A bound session created twice (the first row orphaned) would list a
    device no browser holds among the user's sessions."""
    store, proxy = proxied
    key = generate_key()
    proxy.armed.set()
    created = store.create_user_session("ada", key, b"logged in", later())
    assert proxy.dropped.is_set(), "the proxy never cut the connection"
    assert created == key
    assert len(store.user_session_records("ada")) == 1


def test_a_login_whose_old_records_delete_lost_its_reply_is_served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A login moves the session to a new key and deletes the old record
    with a conditional DELETE. That DELETE committed and its reply was lost
    with the connection (a restart, ``pg_terminate_backend``): its rerun
    found no row, which read as a logout elsewhere meanwhile, and the login
    failed with SessionInterrupted, the user's session gone."""
    url = make_url(sql_url("sql-postgresql", request, tmp_path))
    target = (url.host or "127.0.0.1", url.port or 5432)
    proxy = ReplyDroppingProxy(
        target, (b"DELETE FROM", b"wsgisession_sessions "), READY_FOR_QUERY
    )
    store = SQLStore(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    app = SessionMiddleware(user_app, store=store, cleanup_interval=0)
    try:
        headers = call(app, "set=x", None)
        anonymous = next(v for k, v in headers if k == "Set-Cookie").split(";")[0]
        proxy.armed.set()
        status, _ = get(app, "login=ada", anonymous)  # SessionInterrupted
        assert proxy.dropped.is_set(), "the proxy never cut the connection"
        assert status.startswith("200")
        assert store.load(anonymous.split("=", 1)[1]) is None  # the old key went
        assert len(app.user_sessions("ada")) == 1  # and the new one stays
    finally:
        store.close()
        proxy.close()
