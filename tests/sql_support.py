"""What the SQL store's tests share: its three databases and a look at its tables.

``SQL_KINDS`` name the store on PostgreSQL, MariaDB (servers from
conftest.py) and SQLite through SQLAlchemy; :func:`sql_url` gives the URL
of one, with the store's tables empty so that each test starts afresh.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, delete, func, inspect, select

from wsgisession.stores import SQLStore
from wsgisession.stores._sqlschema import Tables

SQL_KINDS = ["sql-postgresql", "sql-mariadb", "sql-sqlite"]
TABLE = "wsgisession_sessions"


def sql_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of ``kind``, with the store's tables there and empty
    (made beforehand: MariaDB takes ~60 ms to create them, which would eat
    into the short expiries some tests use)."""
    if kind == "sql-sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    server = request.getfixturevalue(kind.removeprefix("sql-") + "_server")
    url = str(server.url)
    with SQLStore(url) as store:
        store.create_tables()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for table in Tables(TABLE).metadata.sorted_tables:
                conn.execute(delete(table))
    finally:
        engine.dispose()
    return url


def drop_tables(url: str, table: str = TABLE) -> None:
    """Drop the store's tables named after ``table``, if they exist."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        Tables(table).metadata.drop_all(engine)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    """The names of the tables in the database at ``url``."""
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def rows(engine: Engine, table: str = TABLE) -> dict[str, bytes]:
    """name -> payload and expiry as bytes, for every row of ``table``."""
    sessions = Tables(table).sessions
    with engine.connect() as conn:
        columns = (sessions.c.key, sessions.c.payload, sessions.c.expires_at)
        result = conn.execute(select(*columns))
        return {k: bytes(p) + repr(float(at)).encode() for k, p, at in result}


def lock_rows(url: str, table: str = TABLE) -> int:
    """How many rows the locks table of ``table`` holds, held or stale."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = select(func.count()).select_from(Tables(table).locks)
            return int(conn.execute(count).scalar_one())
    finally:
        engine.dispose()
