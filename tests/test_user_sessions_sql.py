"""A user's sessions on the SQL store: the ``user_key`` column, added to the
sessions table of an earlier version on first use (PostgreSQL, MariaDB and
SQLite through SQLAlchemy). The store-agnostic suite runs on it too."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import later, user_app
from sql_support import SQL_KINDS, drop_tables, sql_url
from sqlalchemy import (
    Column,
    Double,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)

from wsgisession import SessionMiddleware
from wsgisession.envelope import Envelope, encode
from wsgisession.keys import generate_key, storage_key, user_storage_key
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import SQLStore
from wsgisession.stores.base import now

USER = "alice@example.org"


@pytest.fixture(params=SQL_KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return sql_url(request.param, request, tmp_path)


def old_table(url: str) -> tuple[str, str]:
    """A sessions table as the SQL store made it before ``user_key``, with
    one session in it; its name and the session's key."""
    name, key = "t_" + secrets.token_hex(6), generate_key()
    metadata = MetaData()
    sessions = Table(
        name,
        metadata,
        Column("key", String(64), primary_key=True),
        Column("payload", LargeBinary(), nullable=False),
        Column("expires_at", Double(), nullable=False),
        Index(f"{name}_expires_at", "expires_at"),
    )
    Table(
        f"{name}_locks",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("token", String(32), nullable=False),
        Column("expires_at", Double(), nullable=False),
    )
    parts = Envelope({"cart": [1, 2]}, now(), None, now(), None)
    payload = encode(TaggedJSONSerializer(), parts)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        metadata.create_all(engine)
        with engine.connect() as conn:
            row = {"key": storage_key(key), "payload": payload, "expires_at": later()}
            conn.execute(insert(sessions).values(**row))
    finally:
        engine.dispose()
    return name, key


def test_an_existing_table_gets_the_user_key_column(url: str) -> None:
    table, key = old_table(url)
    with SessionMiddleware(user_app, SQLStore(url, table=table)) as middleware:
        session = middleware.open_session(key)
        assert session["cart"] == [1, 2] and session.user_id is None
        session.bind_user(USER)
        [listed] = middleware.user_sessions(USER)
        assert listed.handle == session.handle and listed.data["cart"] == [1, 2]
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        columns = {c["name"] for c in inspector.get_columns(table)}
        indexes = {i["name"] for i in inspector.get_indexes(table)}
        sessions = Table(table, MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            owners = list(conn.execute(select(sessions.c.user_key)))
    finally:
        engine.dispose()
    assert "user_key" in columns and f"{table}_user_key" in indexes
    assert [tuple(row) for row in owners] == [(user_storage_key(USER),)]
    drop_tables(url, table)


def test_several_stores_migrate_one_table_at_once(url: str) -> None:
    table, key = old_table(url)

    def open_and_list() -> int:
        with SQLStore(url, table=table) as store:
            assert store.load(key) is not None
            return len(store.user_session_records(USER))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: open_and_list(), range(4))) == [0] * 4
    drop_tables(url, table)


def test_a_create_over_an_expired_bound_row_clears_its_owner(url: str) -> None:
    with SQLStore(url) as store:
        key = generate_key()
        assert store.create_user_session(USER, key, b"old", later(-10)) == key
        assert store.create(key, b"anonymous", later()) == key
        assert store.user_session_records(USER) == {}
        assert store.delete_record(storage_key(key)) is True
        assert store.delete_record(storage_key(key)) is False
