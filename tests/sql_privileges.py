"""A database as a DBA hands it to an app: made by an administrator, with an
app user granted SELECT, INSERT, UPDATE and DELETE on the tables and nothing
more (no CREATE, no ALTER, no ownership).

:func:`dba_database` makes a fresh database and app user on the PostgreSQL
or MariaDB test server (a database name with a dash on MariaDB); the
returned :class:`DBADatabase` runs statements as the administrator and
grants the app user what the docs say it needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from servers import DB_PASSWORD, DatabaseServer, mariadb_root
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = ["DBADatabase", "dba_database", "statements_of"]


def statements_of(script: str) -> list[str]:
    """The statements of ``script`` (``init-db --sql``'s text), one by one."""
    return [part.strip() for part in script.split(";") if part.strip()]


@dataclass
class DBADatabase:
    """A database, its DBA's connection and its app user's URL."""

    kind: str
    app_url: str
    run_as_dba: Callable[[str], None]

    def run_script(self, script: str) -> None:
        """Run ``script`` as the DBA, statement by statement, as printed."""
        for statement in statements_of(script):
            self.run_as_dba(statement)

    def grant_app(self, *tables: str) -> None:
        """SELECT, INSERT, UPDATE and DELETE on ``tables`` for the app user."""
        user = make_url(self.app_url).username
        for table in tables:
            if self.kind == "postgresql":
                who = f'"{user}"'
                on = f'"{table}"'
            else:
                who = f"'{user}'@'127.0.0.1'"
                on = f"`{table}`"
            self.run_as_dba(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {on} TO {who}")

    def grant_app_database(self) -> None:
        """SELECT, INSERT, UPDATE and DELETE on every table of the database
        (MariaDB: ``db.*``, which also lets the app see which tables exist;
        PostgreSQL: those of schema public)."""
        user = make_url(self.app_url).username
        privileges = "SELECT, INSERT, UPDATE, DELETE"
        if self.kind == "postgresql":
            on = "ALL TABLES IN SCHEMA public"
            self.run_as_dba(f'GRANT {privileges} ON {on} TO "{user}"')
        else:
            database = make_url(self.app_url).database
            on = f"`{database}`.*"
            self.run_as_dba(f"GRANT {privileges} ON {on} TO '{user}'@'127.0.0.1'")


@contextmanager
def dba_database(kind: str, server: DatabaseServer) -> Iterator[DBADatabase]:
    """A fresh database and app user on ``server`` (``kind``: postgresql or
    mariadb), dropped on the way out."""
    suffix = secrets.token_hex(4)
    if kind == "postgresql":
        with _postgresql_database(server, suffix) as database:
            yield database
    else:
        with _mariadb_database(server, suffix) as database:
            yield database


@contextmanager
def _postgresql_database(server: DatabaseServer, suffix: str) -> Iterator[DBADatabase]:
    name, user = f"dba_{suffix}", f"app_{suffix}"
    cluster = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with cluster.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{DB_PASSWORD}'"))
    dba_url = make_url(server.url).set(database=name)
    dba = create_engine(dba_url, isolation_level="AUTOCOMMIT")

    def run_as_dba(statement: str) -> None:
        with dba.connect() as conn:
            conn.execute(text(statement))

    # PostgreSQL 15 already keeps CREATE on public from other users; older ones do not.
    run_as_dba("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    app_url = make_url(server.url).set(
        username=user, password=DB_PASSWORD, database=name
    )
    try:
        yield DBADatabase(
            "postgresql", app_url.render_as_string(hide_password=False), run_as_dba
        )
    finally:
        dba.dispose()
        with cluster.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE "{user}"'))
        cluster.dispose()


@contextmanager
def _mariadb_database(server: DatabaseServer, suffix: str) -> Iterator[DBADatabase]:
    name, user = f"dba-{suffix}", f"app_{suffix}"
    root = mariadb_root(server)
    root.autocommit(True)

    def run_as_dba(statement: str) -> None:
        with root.cursor() as cursor:
            cursor.execute(statement)

    run_as_dba(f"CREATE DATABASE `{name}`")
    run_as_dba(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'")
    run_as_dba(f"USE `{name}`")
    app_url = make_url(server.url).set(
        username=user, password=DB_PASSWORD, database=name
    )
    try:
        yield DBADatabase(
            "mariadb", app_url.render_as_string(hide_password=False), run_as_dba
        )
    finally:
        run_as_dba(f"DROP DATABASE `{name}`")
        run_as_dba(f"DROP USER '{user}'@'127.0.0.1'")
        root.close()
