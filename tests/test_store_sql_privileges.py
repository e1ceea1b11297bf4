"""SQLStore run by an app user with least privilege, in a database a DBA made:
SELECT, INSERT, UPDATE and DELETE on the tables ``init-db --sql`` prints,
nothing more (PostgreSQL, and MariaDB with a database name holding a dash).

Everything a request, a sweep or a user-session call does works; a table
that is missing or was made by an earlier version is a StoreUnavailable
that says what to run, never the driver's "permission denied" alone.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
import webtest
from helpers import later, user_app
from servers import DatabaseServer
from sql_privileges import DBADatabase, dba_database, statements_of

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.stores import SQLStore

TABLE = "wsgisession_sessions"
LOCKS = f"{TABLE}_locks"
USER = "alice@example.org"

#: The sessions table as versions before ``user_key`` made it (no column,
#: no index on it), with its locks table: PostgreSQL's spelling.
OLD_TABLES = f"""
CREATE TABLE {TABLE} (key VARCHAR(64) NOT NULL, payload BYTEA NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (key));
CREATE INDEX {TABLE}_expires_at ON {TABLE} (expires_at);
CREATE TABLE {LOCKS} (key VARCHAR(64) NOT NULL, token VARCHAR(32) NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (key));
"""


def old_tables(kind: str) -> str:
    """:data:`OLD_TABLES` in ``kind``'s spelling."""
    if kind == "postgresql":
        return OLD_TABLES
    mariadb = OLD_TABLES.replace("BYTEA", "LONGBLOB").replace(
        "DOUBLE PRECISION", "DOUBLE"
    )
    return mariadb.replace("(key", "(`key`")


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[DBADatabase]:
    server = request.getfixturevalue(f"{request.param}_server")
    with dba_database(request.param, server) as made:
        yield made


def made_as_printed(database: DBADatabase, *, leave_out: str = "") -> None:
    """The DBA runs ``init-db --sql``'s statements (less those holding
    ``leave_out``) and grants the app user what the docs say it needs."""
    with SQLStore(database.app_url) as store:
        script = store.ddl()
    for statement in statements_of(script):
        if not leave_out or leave_out not in statement:
            database.run_as_dba(statement)
    database.grant_app(*(t for t in (TABLE, LOCKS) if t != leave_out))


def test_every_call_works_with_select_insert_update_delete(
    database: DBADatabase,
) -> None:
    made_as_printed(database)
    store = SQLStore(database.app_url)
    with SessionMiddleware(user_app, store, lock=True) as middleware:
        client, other = webtest.TestApp(middleware), webtest.TestApp(middleware)
        client.get(f"/?login={USER}")
        other.get(f"/?login={USER}")
        assert client.get("/?set=kept").text.endswith(" kept")
        assert client.get("/").text.endswith(" kept")
        assert len(middleware.user_sessions(USER)) == 2
        for _ in range(3):
            store.create(secrets.token_hex(16), b"gone", later(-10))
        assert store.sweep_expired(1) == 1 and store.clear_expired() == 2
        assert middleware.revoke_user_sessions(USER) == 2
        assert middleware.user_sessions(USER) == []
        store.create_tables()  # init-db run by mistake as the app: nothing to do
        assert store.has_tables()


def test_missing_tables_say_what_to_run(database: DBADatabase) -> None:
    database.grant_app_database()
    store = SQLStore(database.app_url)
    with store, pytest.raises(StoreUnavailable) as raised:
        store.load(secrets.token_hex(16))
    message = str(raised.value)
    assert f"tables {TABLE!r} and {LOCKS!r} do not exist" in message
    assert "wsgisession init-db" in message and "init-db --sql" in message
    assert "SELECT, INSERT, UPDATE and DELETE" in message
    assert database.app_url.split("@")[0].split(":")[-1] not in message


def test_a_missing_locks_table_is_named(database: DBADatabase) -> None:
    made_as_printed(database, leave_out=LOCKS)
    database.grant_app_database()  # MariaDB hides a table not granted
    store = SQLStore(database.app_url)
    with store, pytest.raises(StoreUnavailable, match=f"table {LOCKS!r} does not"):
        store.load(secrets.token_hex(16))


def test_an_old_table_names_the_statements_to_run(database: DBADatabase) -> None:
    """The app user may not ALTER the table of an earlier version: the
    error gives the statements, which the DBA runs, and the app then works
    without a restart."""
    database.run_script(old_tables(database.kind))
    database.grant_app(TABLE, LOCKS)
    with SessionMiddleware(user_app, SQLStore(database.app_url)) as middleware:
        with pytest.raises(StoreUnavailable) as raised:
            middleware.open_session().save()
        message = str(raised.value)
        assert "made by an earlier version" in message and "user_key" in message
        assert "wsgisession init-db" in message
        database.run_script(message.split("or run: ", 1)[1])
        client = webtest.TestApp(middleware)
        client.get(f"/?login={USER}")
        assert client.get("/?set=kept").text.startswith(f"{USER} ")
        assert len(middleware.user_sessions(USER)) == 1


def test_a_missing_user_key_index_is_a_warning(
    database: DBADatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The column is there, its index is not (a DBA's upgrade half done):
    listings scan the table, but no request fails for it."""
    made_as_printed(database, leave_out=f"{TABLE}_user_key")
    caplog.set_level(logging.WARNING, "wsgisession.stores.sql")
    with SessionMiddleware(user_app, SQLStore(database.app_url)) as middleware:
        client = webtest.TestApp(middleware)
        client.get(f"/?login={USER}")
        assert client.get("/?set=kept").text.startswith(f"{USER} ")
        assert len(middleware.user_sessions(USER)) == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"CREATE INDEX {TABLE}_user_key" in warning.getMessage()


def test_a_read_only_mariadb_missing_the_index_still_serves(
    mariadb_server: DatabaseServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A MariaDB replica (``read_only``) whose table lacks only the
    ``user_key`` index, its app user granted everything on the database:
    the server refuses the CREATE INDEX for good (1290), which is a warning
    as a refusal of the grants is. PyMySQL gives the error SQLSTATE HY000,
    which was taken for a failure of the moment: every request failed."""
    with dba_database("mariadb", mariadb_server) as database:
        made_as_printed(database, leave_out=f"{TABLE}_user_key")
        app_user = database.app_url.split("//")[1].split(":")[0]
        database_name = database.app_url.rsplit("/", 1)[1]
        database.run_as_dba(
            f"GRANT ALL ON `{database_name}`.* TO '{app_user}'@'127.0.0.1'"
        )
        caplog.set_level(logging.WARNING, "wsgisession.stores.sql")
        database.run_as_dba("SET GLOBAL read_only = 1")
        try:
            with SQLStore(database.app_url) as store:
                assert store.load(secrets.token_hex(16)) is None
                assert store.load(secrets.token_hex(16)) is None
        finally:
            database.run_as_dba("SET GLOBAL read_only = 0")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"CREATE INDEX {TABLE}_user_key" in warning.getMessage()
