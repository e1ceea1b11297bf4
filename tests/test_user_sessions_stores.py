"""A user's sessions: what is particular to one store, and stores without them.

The store-agnostic suite is tests/test_user_sessions.py; here: the SQLite
schema migration, the file store's index files, the request costs of a
bound session, a third-party store without user sessions and the signed
cookie store's refusal.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import webtest
from helpers import fake_clock, user_app

from wsgisession import SessionInterrupted, SessionMiddleware, envelope
from wsgisession.envelope import Envelope
from wsgisession.keys import generate_key, storage_key, user_storage_key
from wsgisession.serializers import resolve_serializer
from wsgisession.stores import FileStore, MemoryStore, SignedCookieStore, SQLiteStore
from wsgisession.stores.base import Merge, Progress, Record, Store, now

USER = "alice"


def state(client: webtest.TestApp) -> list[str]:
    return client.get("/").text.split(" ")


def cookie_of(client: webtest.TestApp) -> str:
    return client.cookies["sessionid"]


# -- SQLite: a table from before the user_key column -------------------------------

OLD_SCHEMA = (
    (
        "CREATE TABLE wsgisession_sessions ("
        " key TEXT PRIMARY KEY, payload BLOB NOT NULL, expires_at REAL NOT NULL"
        ") WITHOUT ROWID"
    ),
    "CREATE INDEX wsgisession_sessions_expires_at ON wsgisession_sessions (expires_at)",
)


def old_database(path: Path) -> str:
    """A database as the previous version left it, with one session; its key."""
    key = generate_key()
    record = Envelope({"cart": [1, 2]}, now(), None)
    payload = envelope.encode(resolve_serializer("json"), record)
    with sqlite3.connect(path) as conn:
        for statement in OLD_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO wsgisession_sessions VALUES (?, ?, ?)",
            (storage_key(key), payload, now() + 600),
        )
    conn.close()
    return key


def test_sqlite_migrates_an_existing_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    key = old_database(path)
    with SessionMiddleware(user_app, SQLiteStore(path)) as middleware:
        session = middleware.open_session(key)
        assert session["cart"] == [1, 2] and session.user_id is None
        session.bind_user(USER)
        [listed] = middleware.user_sessions(USER)
        assert listed.handle == session.handle and listed.data["cart"] == [1, 2]
        assert listed.saved_at >= listed.created  # "saved" now in the envelope
    with sqlite3.connect(path) as conn:
        columns = [
            row[1] for row in conn.execute("PRAGMA table_info(wsgisession_sessions)")
        ]
        indexes = [
            row[1] for row in conn.execute("PRAGMA index_list(wsgisession_sessions)")
        ]
        owner = conn.execute("SELECT user_key FROM wsgisession_sessions").fetchall()
    conn.close()
    assert "user_key" in columns
    assert "wsgisession_sessions_bound_user" in indexes
    assert "wsgisession_sessions_expires_at" not in indexes  # sweeps walk the key
    assert owner == [(user_storage_key(USER),)]


def test_sqlite_migration_by_several_stores_at_once(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    key = old_database(path)
    errors: list[BaseException] = []

    def open_and_read() -> None:
        try:
            with SQLiteStore(path) as store:
                assert store.load(key) is not None
                store.user_session_records(USER)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_sqlite_replaces_the_full_user_index_by_a_partial_one(tmp_path: Path) -> None:
    """Earlier versions indexed every row's user_key; unbound rows now stay out."""
    path = tmp_path / "previous.sqlite3"
    key = old_database(path)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE wsgisession_sessions ADD COLUMN user_key TEXT")
        conn.execute(
            "CREATE INDEX wsgisession_sessions_user_key"
            " ON wsgisession_sessions (user_key)"
        )
        owner = (user_storage_key(USER),)
        conn.execute("UPDATE wsgisession_sessions SET user_key = ?", owner)
    conn.close()
    with SQLiteStore(path) as store:
        assert store.load(key) is not None
    with sqlite3.connect(path) as conn:
        indexes = {
            row[1]: row[4]  # name: partial
            for row in conn.execute("PRAGMA index_list(wsgisession_sessions)")
        }
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM wsgisession_sessions"
            " WHERE user_key = ? AND expires_at > ?",
            (USER, 0.0),
        ).fetchall()
    conn.close()
    assert "wsgisession_sessions_user_key" not in indexes
    assert indexes["wsgisession_sessions_bound_user"] == 1
    assert "wsgisession_sessions_bound_user" in str(plan)


def test_sqlite_create_over_an_expired_bound_row_clears_its_owner(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    key = generate_key()
    assert store.create_user_session(USER, key, b"old", now() - 1) == key
    assert store.create(key, b"new", now() + 600) == key
    assert store.user_session_records(USER) == {}


# -- the file store's index files --------------------------------------------------


def test_file_index_is_one_file_per_user_named_by_a_hash(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    keys = [generate_key() for _ in range(2)]
    for key in keys:
        store.create_user_session(USER, key, b"{}", now() + 600)
    index = tmp_path / "sessions" / "users" / user_storage_key(USER)
    assert sorted(index.read_text().split("\n")[1:]) == sorted(map(storage_key, keys))
    assert oct(index.stat().st_mode & 0o777) == "0o600"
    assert store.delete_record(storage_key(keys[0])) is True
    assert store.delete_record(storage_key(keys[0])) is False
    assert list(store.user_session_records(USER)) == [storage_key(keys[1])]
    assert index.read_text().split("\n")[1:] == [storage_key(keys[1])]
    store.delete_record(storage_key(keys[1]))
    assert store.user_session_records(USER) == {}
    assert not index.exists()  # an empty index goes


def test_file_index_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sessions")
    store.create(generate_key(), b"{}", now() + 600)
    target = tmp_path / "target"
    target.write_text("wsu1\n" + "a" * 64)
    users = tmp_path / "sessions" / "users"
    users.mkdir(mode=0o700)
    index = users / user_storage_key(USER)
    index.symlink_to(target)
    assert store.user_session_records(USER) == {}
    key = generate_key()
    store.create_user_session(USER, key, b"{}", now() + 600)
    assert target.read_text() == "wsu1\n" + "a" * 64  # written around, not through
    assert not index.is_symlink()
    assert list(store.user_session_records(USER)) == [storage_key(key)]


def test_file_sweep_prunes_the_indexes_of_users_who_never_return(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "sessions")
    with fake_clock() as clock:
        store.create_user_session(USER, generate_key(), b"{}", now() + 60)
        index = tmp_path / "sessions" / "users" / user_storage_key(USER)
        store.clear_expired()  # nothing expired yet: the index stays
        assert index.exists()
        clock.advance(61)
        store.clear_expired()
        assert not index.exists()


# -- a bound session's requests cost nothing extra ---------------------------------


class CountingStore(MemoryStore):
    """A memory store that counts the calls a request makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def load(self, session_key: str) -> Record | None:
        self.calls.append("load")
        return super().load(session_key)

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        self.calls.append("update")
        return super().update(session_key, merge, loaded)

    def user_index_intact(self, user_id: str, session_key: str) -> bool:
        self.calls.append("user_index_intact")
        return super().user_index_intact(user_id, session_key)


def test_a_bound_request_makes_the_same_store_calls(tmp_path: Path) -> None:
    store = CountingStore()
    client = webtest.TestApp(SessionMiddleware(user_app, store))
    client.get("/", {"set": "a"})
    calls = []
    for login in (False, True):
        if login:
            client.get("/", {"login": USER})
        store.calls.clear()
        client.get("/", {"set": "b"})
        state(client)
        calls.append([c for c in store.calls if c != "user_index_intact"])
    assert calls[0] == calls[1] == ["load", "update", "load"]


# -- stores without user sessions ---------------------------------------------------
class DictStore(Store):
    """A third-party store that knows nothing of users: the five required methods."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[bytes, float]] = {}

    def load(self, session_key: str) -> Record | None:
        record = self.records.get(storage_key(session_key))
        return Record(*record) if record and record[1] > now() else None

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        if self.load(session_key) is not None:
            return None
        self.records[storage_key(session_key)] = (payload, expires_at)
        return session_key

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        current = self.load(session_key)
        payload, expires_at = merge(None if current is None else current.payload)
        if expires_at <= now():  # as the store protocol says: a past expiry deletes
            self.records.pop(storage_key(session_key), None)
        else:
            self.records[storage_key(session_key)] = (payload, expires_at)
        return session_key

    def delete(self, session_key: str) -> None:
        self.records.pop(storage_key(session_key), None)

    def clear_expired(self, progress: Progress | None = None) -> int:
        return 0


def test_a_store_without_user_sessions_works_for_everything_else() -> None:
    store = DictStore()
    assert store.supports_user_sessions is False
    middleware = SessionMiddleware(user_app, store)
    client = webtest.TestApp(middleware)
    client.get("/", {"set": "kept"})
    key = cookie_of(client)
    user, handle, value = state(client)
    assert (user, value) == ("None", "kept")
    assert handle not in ("None", key)
    client.get("/", {"cycle": ""})
    assert state(client)[2] == "kept" and cookie_of(client) != key
    session = middleware.open_session(cookie_of(client))
    with pytest.raises(NotImplementedError, match="DictStore"):
        session.bind_user(USER)
    assert session.user_id is None and session["value"] == "kept"
    for call in (
        lambda: middleware.user_sessions(USER),
        lambda: middleware.revoke_user_sessions(USER),
        lambda: middleware.revoke_user_session(USER, "handle"),
    ):
        with pytest.raises(NotImplementedError, match="DictStore does not support"):
            call()
    client.get("/", {"logout": ""})
    assert store.records == {}


def test_a_store_without_user_sessions_brings_no_logged_out_session_back() -> None:
    """With no ``delete_record`` to ask, a key change still reads the old
    record (the update that deletes it) and finds it gone."""
    store = DictStore()
    middleware = SessionMiddleware(user_app, store)
    first = middleware.open_session()
    first["value"] = "before-the-logout"
    first.save()
    assert first.session_key is not None
    in_flight = middleware.open_session(first.session_key)
    in_flight.load()
    middleware.open_session(first.session_key).flush()  # another tab logs out
    with pytest.raises(SessionInterrupted):
        in_flight.cycle_key()
    assert in_flight.session_key is None
    assert store.records == {}


def test_the_signed_cookie_store_refuses_with_the_reason() -> None:
    middleware = SessionMiddleware(
        user_app, SignedCookieStore("s3cret-395ca18d5721f5d248ddac6221bd09020dd")
    )
    session = middleware.open_session()
    session["x"] = 1
    with pytest.raises(NotImplementedError, match="cannot be revoked without server"):
        session.bind_user(USER)
    assert session.user_id is None and session.handle is None
    with pytest.raises(NotImplementedError, match="SignedCookieStore"):
        middleware.user_sessions(USER)
    with pytest.raises(NotImplementedError, match="client-side session"):
        middleware.revoke_user_sessions(USER)
