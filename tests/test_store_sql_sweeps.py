"""SQLStore's clear_expired() when it is not alone: another process sweeping
the same table, and a SQLite built with its old limit on bound parameters.
Real PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import later
from sql_support import SQL_KINDS, TABLE, sql_url
from sqlalchemy import create_engine, delete, event, func, select

from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore, _sqlcleanup
from wsgisession.stores._sqlschema import Tables
from wsgisession.stores.base import now


def _expired_rows(url: str) -> int:
    sessions = Tables(TABLE).sessions
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = select(func.count()).where(sessions.c.expires_at <= now())
            return int(conn.execute(count).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_clear_expired_goes_on_after_a_batch_another_sweep_shared(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker's sweep (or clear-expired) deletes a row that a batch of
    this one had read, before its DELETE: that batch deletes fewer rows than
    it read, which is not the end of the expired rows."""
    url = sql_url(kind, request, tmp_path)
    monkeypatch.setattr(_sqlcleanup, "BATCH", 10)
    store = SQLStore(url)
    live = generate_key()
    store.create(live, b"live", later())
    for _ in range(25):
        store.create(generate_key(), b"dead", now() - 5)
    sessions = Tables(TABLE).sessions
    other = create_engine(url, isolation_level="AUTOCOMMIT")
    delete_expired = store._tables.delete_expired
    swept: list[str] = []

    def swept_meanwhile(keys: list[str], moment: float) -> Any:
        if not swept:  # what the other worker's sweep did in between
            swept.append(keys[0])
            with other.connect() as conn:
                conn.execute(delete(sessions).where(sessions.c.key == keys[0]))
        return delete_expired(keys, moment)

    monkeypatch.setattr(store._tables, "delete_expired", swept_meanwhile)
    assert store.clear_expired() == 24
    assert _expired_rows(url) == 0  # 15 were left behind
    assert store.load(live) is not None
    other.dispose()
    store.close()


@pytest.mark.slow
def test_clear_expired_on_a_sqlite_of_999_parameters(tmp_path: Path) -> None:
    """SQLite before 3.32 (RHEL 8's, Ubuntu 20.04's) takes at most 999 bound
    parameters in a statement: a batch of 1000 keys was 1001 of them, and
    clear_expired() failed with "too many SQL variables" on every run."""
    engine = create_engine(f"sqlite:///{tmp_path / 'sessions.sqlite3'}")

    @event.listens_for(engine, "connect")
    def as_before_3_32(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    store = SQLStore(engine)
    for _ in range(1005):
        store.create(generate_key(), b"dead", now() - 5)
    assert store.clear_expired() == 1005
    assert store.sweep_expired(2000) == 0
    store.close()
    engine.dispose()


def test_clear_expired_past_a_row_whose_key_is_a_blob(tmp_path: Path) -> None:
    """SQLite keeps whatever is put in the key column: one expired row with a
    blob key (written by hand, or damaged) made every sweep fail for good
    (its keys are written into the DELETE, and a blob could not be), so the
    table grew with every expired session from then on."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLStore(f"sqlite:///{path}")
    dead, live = generate_key(), generate_key()
    store.create(dead, b"dead", now() - 5)
    store.create(live, b"live", later())
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (key, payload, expires_at) VALUES (?, ?, ?)",
            (b"\x00hostile", b"x", now() - 5),
        )
    assert store.clear_expired() == 2
    assert store.load(dead) is None
    assert store.load(live) is not None
    store.close()
