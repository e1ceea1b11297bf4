"""The SQL store's tables: what :class:`~.sql.SQLStore` reads and writes.

Two tables, defined once with SQLAlchemy Core so that every dialect gets
its own column types: ``<table>`` (the sessions, keyed by the hashed id,
with an index on ``expires_at``) and ``<table>_locks`` (the request locks,
one row per locked session, with the holder's token and an expiry).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Double,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.elements import TextClause

from ..errors import ConfigError
from ._sqlrefusals import reason_of, refused

__all__ = ["IndexRefused", "SchemaRefused", "Tables"]

_KEY_LENGTH = 64  # hex SHA-256, see keys.storage_key
_TOKEN_LENGTH = 32
#: A MySQL BLOB holds only 64 KiB; sessions may be larger.
_PAYLOAD = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class SchemaRefused(Exception):
    """The database would not make what the store's tables lack (the app's
    user may not create or alter tables, or it is a read-only replica): the
    message says what is missing and what an administrator runs instead."""

    def __init__(
        self, missing: str, attempt: str, remedy: str, cause: BaseException
    ) -> None:
        super().__init__(
            f"{missing}; the store could not {attempt} ({reason_of(cause)}): {remedy}"
        )


class IndexRefused(SchemaRefused):
    """Only the index on ``user_key`` is missing: listings scan the table,
    but every request still works, so this is a warning, not an outage."""


class Tables:
    """The sessions table and its locks table under one ``name``."""

    def __init__(self, name: str) -> None:
        self.metadata = MetaData()
        self.sessions = Table(
            name,
            self.metadata,
            Column("key", String(_KEY_LENGTH), primary_key=True),
            Column("payload", _PAYLOAD, nullable=False),
            Column("expires_at", Double(), nullable=False),
            # user_storage_key() of the owner of a bound session, else NULL.
            Column("user_key", String(_KEY_LENGTH), nullable=True),
            Index(f"{name}_expires_at", "expires_at"),
            Index(f"{name}_user_key", "user_key"),
        )
        self.locks = Table(
            f"{name}_locks",
            self.metadata,
            Column("key", String(_KEY_LENGTH), primary_key=True),
            Column("token", String(_TOKEN_LENGTH), nullable=False),
            Column("expires_at", Double(), nullable=False),
        )

    def statements(self) -> dict[str, Any]:
        """The store's statements by name, with ``b_``-prefixed parameters."""
        t, locks = self.sessions, self.locks
        key: Any = bindparam("b_key")
        moment: Any = bindparam("b_now")
        user: Any = bindparam("b_user")
        values: dict[str, Any] = {
            "payload": bindparam("b_payload"),
            "expires_at": bindparam("b_exp"),
        }
        lock_values: dict[str, Any] = {
            "token": bindparam("b_token"),
            "expires_at": bindparam("b_exp"),
        }
        unchanged = (t.c.key == key, t.c.payload == bindparam("b_loaded"))
        dead = (t.c.key == key, t.c.expires_at <= moment)
        # A new record takes its key over from an expired one, or from the
        # row that already holds its very payload and expiry: a run again
        # after a dropped connection whose INSERT committed (only the reply
        # was lost) must not find the key taken by its own row. A live row
        # with other values is never replaced, not even one of the same
        # payload (a create that would move its expiry: None, as elsewhere).
        dead_or_own = (
            t.c.key == key,
            or_(
                t.c.expires_at <= moment,
                and_(
                    t.c.payload == bindparam("b_payload"),
                    t.c.expires_at == bindparam("b_exp"),
                ),
            ),
        )
        # A lock row is taken when its holder's ttl ran out, or when it is
        # already this holder's: a run again after a dropped connection
        # whose INSERT committed (only the reply was lost) must not wait
        # for its own row.
        dead_lock = (
            locks.c.key == key,
            or_(
                locks.c.expires_at <= moment,
                locks.c.token == bindparam("b_token"),
            ),
        )
        return {
            "load": select(t.c.payload, t.c.expires_at).where(
                t.c.key == key, t.c.expires_at > moment
            ),
            "insert": insert(t).values(key=key, user_key=user, **values),
            "take_dead": update(t).where(*dead_or_own).values(user_key=user, **values),
            "user_sessions": select(t.c.key, t.c.payload, t.c.expires_at).where(
                t.c.user_key == user, t.c.expires_at > moment
            ),
            "delete_live": delete(t).where(t.c.key == key, t.c.expires_at > moment),
            "write_if": update(t)
            .where(*unchanged, t.c.expires_at > moment)
            .values(**values),
            # Still live, as in write_if: a row that expired meanwhile is gone
            # (SessionInterrupted), not a record this save may end.
            "delete_if": delete(t).where(*unchanged, t.c.expires_at > moment),
            "delete": delete(t).where(t.c.key == key),
            "delete_dead": delete(t).where(*dead),
            "count_dead": select(func.count()).where(t.c.expires_at <= moment),
            "lock_take": update(locks).where(*dead_lock).values(**lock_values),
            "lock_insert": insert(locks).values(key=key, **lock_values),
            "lock_drop": delete(locks).where(
                locks.c.key == key, locks.c.token == bindparam("b_token")
            ),
            "locks_dead": delete(locks).where(locks.c.expires_at <= moment),
        }

    def expired_keys(self, moment: float, limit: int) -> Any:
        """Up to ``limit`` keys of records expired at ``moment``."""
        t = self.sessions
        return select(t.c.key).where(t.c.expires_at <= moment).limit(limit)

    def delete_expired(self, keys: list[str], moment: float) -> Any:
        """Delete those of ``keys`` whose records are still expired.

        The keys (hex, read from the table) are written into the statement
        rather than bound: SQLite before 3.32 takes at most 999 parameters.
        """
        t = self.sessions
        listed: Any = bindparam("b_keys", keys, expanding=True, literal_execute=True)
        return delete(t).where(t.c.key.in_(listed), t.c.expires_at <= moment)

    def refuse_foreign(self, engine: Engine) -> None:
        """ConfigError if a table of this name exists with other columns
        (Beaker's ``beaker_cache``, an app's own): it is not ours to alter."""
        wanted = ("key", "payload", "expires_at")
        with engine.connect() as conn:
            inspector = inspect(conn)
            if not inspector.has_table(self.sessions.name):
                return
            columns = {c["name"] for c in inspector.get_columns(self.sessions.name)}
        missing = [name for name in wanted if name not in columns]
        if missing:
            raise ConfigError(
                f"table {self.sessions.name!r} exists but is not a wsgisession "
                f"table (no column {', '.join(missing)}): it is left as it is; "
                "name a table of its own in sql_table (Beaker's table_name is "
                "not reused: its sessions are not read)"
            )

    def create(self, engine: Engine) -> None:
        """Create the missing tables; safe when another process creates them
        at the same moment (its CREATE wins, ours fails and is forgotten).
        SchemaRefused naming them when the database will not."""
        for attempt in range(3):
            try:
                with engine.begin() as conn:
                    self.metadata.create_all(conn, checkfirst=True)
                return
            except DBAPIError as exc:
                missing = self._missing(engine)
                if not missing:
                    return
                if attempt == 2:
                    if not refused(exc):  # failed for now: not the grants' doing
                        raise
                    raise self._tables_refused(missing, exc) from exc

    def _tables_refused(self, missing: list[str], cause: DBAPIError) -> SchemaRefused:
        """What to run when the app's user may not create ``missing``."""
        names = " and ".join(repr(name) for name in missing)
        several = len(missing) > 1
        return SchemaRefused(
            f"tables {names} do not exist"
            if several
            else f"table {names} does not exist",
            "create them" if several else "create it",
            f"run `wsgisession init-db` (sql_table = {self.sessions.name}) as "
            "a database user that may create tables, or the statements "
            "`wsgisession init-db --sql` prints (on PostgreSQL in the schema "
            "the app's search_path finds first), and grant the app's user "
            "SELECT, INSERT, UPDATE and DELETE on "
            f"{self.sessions.name} and {self.locks.name}",
            cause,
        )

    def add_user_column(self, engine: Engine) -> None:
        """Add ``user_key`` and its index to a sessions table made before them;
        safe when several processes do it at once: each step whose statement
        fails is fine if another process has done it meanwhile (the column
        may already be there while that process still makes the index)."""
        table, column = self.sessions, self.sessions.c.user_key
        if all(self._user_column_parts(engine)):
            return
        quote = engine.dialect.identifier_preparer.quote
        kind = column.type.compile(dialect=engine.dialect)
        add = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
        index = next(i for i in table.indexes if i.name == f"{table.name}_user_key")
        steps: tuple[TextClause | CreateIndex, ...] = (text(add), CreateIndex(index))
        for step, statement in enumerate(steps):
            if self._user_column_parts(engine)[step]:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(statement)
            except DBAPIError as exc:
                if self._user_column_parts(engine)[step]:
                    continue  # another process did it meanwhile
                if not refused(exc):  # failed for now (a lock): tried again later
                    raise
                raise self._upgrade_refused(engine, steps[step:], exc) from exc

    def _upgrade_refused(
        self,
        engine: Engine,
        steps: tuple[TextClause | CreateIndex, ...],
        cause: DBAPIError,
    ) -> SchemaRefused:
        """What to run when the app's user may not add ``user_key`` (or its
        index, the last step) to a table an earlier version made."""
        run = " ".join(
            f"{str(s.compile(dialect=engine.dialect)).strip()};" for s in steps
        )
        name = self.sessions.name
        remedy = (
            f"run `wsgisession init-db` (sql_table = {name}) as a database "
            f"user that may alter it, or run: {run}"
        )
        if len(steps) == 1:
            return IndexRefused(
                f"table {name!r} has no index {name}_user_key (made by an "
                "earlier version): a user's sessions are listed by scanning it",
                "create it",
                remedy,
                cause,
            )
        return SchemaRefused(
            f"table {name!r} was made by an earlier version: it has no column "
            "user_key, which every save writes",
            "add it",
            remedy,
            cause,
        )

    def _user_column_parts(self, engine: Engine) -> tuple[bool, bool]:
        """Whether the ``user_key`` column, and its index, exist."""
        with engine.connect() as conn:
            inspector = inspect(conn)
            names = {i["name"] for i in inspector.get_indexes(self.sessions.name)}
            columns = {c["name"] for c in inspector.get_columns(self.sessions.name)}
        return "user_key" in columns, f"{self.sessions.name}_user_key" in names

    def sessions_exist(self, engine: Engine) -> bool:
        """Whether the sessions table exists (nothing is created)."""
        with engine.connect() as conn:
            return bool(inspect(conn).has_table(self.sessions.name))

    def _missing(self, engine: Engine) -> list[str]:
        """The names of the store's tables that do not exist."""
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables = self.metadata.sorted_tables
            return [t.name for t in tables if not inspector.has_table(t.name)]

    def ddl(self, engine: Engine) -> str:
        """The CREATE TABLE and CREATE INDEX statements in ``engine``'s dialect."""
        statements: list[Any] = []
        for table in self.metadata.sorted_tables:
            statements.append(CreateTable(table))
            statements += [CreateIndex(index) for index in table.indexes]
        return (
            "".join(
                f"{str(s.compile(dialect=engine.dialect)).strip()};\n\n"
                for s in statements
            ).rstrip("\n")
            + "\n"
        )
