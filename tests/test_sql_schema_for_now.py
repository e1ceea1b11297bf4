"""A schema change of the SQL store that fails for the moment is no refusal.

A sessions table of an earlier version lacking only the ``user_key``
index: the store creates it as it sets up. Another process's open
transaction on the table (an ordinary save) holds a lock the ``CREATE
INDEX`` waits for; past the connection's lock timeout it failed, and the
store logged that its user may not create the index ("run init-db as a
database user that may alter it") and never tried again: the index stayed
missing for the life of the process, a user's sessions listed by scanning
the table. It now fails that request, saying what failed, and the next one
makes the index.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sql_support import TABLE, sql_url
from sqlalchemy import create_engine, insert, inspect

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore
from wsgisession.stores._sqlschema import Tables

INDEX = f"{TABLE}_user_key"
SESSIONS = Tables(TABLE).sessions

#: The connection option that makes a wait for a table lock end soon (1 s).
SHORT_LOCK_WAIT = {
    "sql-postgresql": "options=-c%20lock_timeout%3D1000",
    "sql-mariadb": "init_command=SET%20SESSION%20lock_wait_timeout%3D1",
}


def has_index(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = {index["name"] for index in inspect(conn).get_indexes(TABLE)}
    finally:
        engine.dispose()
    return INDEX in names


@pytest.mark.slow  # waits out a lock timeout on each database
@pytest.mark.parametrize("kind", sorted(SHORT_LOCK_WAIT))
def test_an_index_the_database_could_not_make_for_now_is_made_later(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = sql_url(kind, request, tmp_path)  # the store's tables, the index too
    owner = create_engine(url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        next(i for i in SESSIONS.indexes if i.name == INDEX).drop(conn)
    assert not has_index(url)
    separator = "&" if "?" in url else "?"
    store = SQLStore(f"{url}{separator}{SHORT_LOCK_WAIT[kind]}")
    caplog.set_level(logging.WARNING)
    saving = create_engine(url).connect()  # another process's save, not yet committed
    try:
        transaction = saving.begin()
        saving.execute(
            insert(SESSIONS).values(key="k" * 64, payload=b"x", expires_at=1e12)
        )
        with pytest.raises(StoreUnavailable, match="(?i)lock"):
            store.load(generate_key())
        transaction.rollback()
    finally:
        saving.close()
    assert store.load(generate_key()) is None  # set up now, the index made
    assert has_index(url)
    assert "may alter it" not in caplog.text  # the grants were never at fault
    store.close()
    owner.dispose()
