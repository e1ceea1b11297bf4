"""Running the SQL store's hot statements straight on the pool's DBAPI connections.

SQLAlchemy Core builds each statement and compiles it once for the
database's dialect; executing it through a ``Connection`` would then cost
some 150 µs of Python per statement (measured against psycopg alone),
more than a loopback round trip. Loads and saves therefore run the
compiled SQL on the pooled DBAPI connection's cursor: the pool, its
connect timeout and its replacement of dropped connections stay
SQLAlchemy's, and the driver still prepares repeated statements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

__all__ = ["Compiled", "Runner", "compile_statement"]


class Compiled(NamedTuple):
    """A statement as the driver takes it: SQL text, and for positional
    parameter styles the parameter names in order (None: a dict is passed)."""

    sql: str
    names: tuple[str, ...] | None


def compile_statement(statement: ClauseElement, engine: Engine) -> Compiled:
    compiled: Any = statement.compile(dialect=engine.dialect)  # a SQLCompiler
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    return Compiled(compiled.string, names)


class Runner:
    """Cursors on pooled connections, in autocommit mode.

    Engines the store built are in autocommit mode already; on a given
    engine each connection is switched for the store's use and switched
    back before it returns to the pool.
    """

    def __init__(self, engine: Engine, *, switch_autocommit: bool) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.switch = switch_autocommit

    @property
    def errors(self) -> type[Exception]:
        """The driver's base exception class."""
        error: type[Exception] = self.dialect.loaded_dbapi.Error
        return error

    @property
    def integrity_error(self) -> type[Exception]:
        error: type[Exception] = self.dialect.loaded_dbapi.IntegrityError
        return error

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor on a pooled connection; a connection the server dropped
        is invalidated (the pool opens a new one) and the error re-raised."""
        connection = self.engine.raw_connection()
        dbapi_connection: Any = connection.dbapi_connection
        cursor = None
        try:
            if self.switch:
                self.dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
            cursor = connection.cursor()
            yield Cursor(cursor)
        except self.errors as exc:
            if self.dialect.is_disconnect(exc, dbapi_connection, cursor):  # type: ignore[arg-type]
                self._drop_pool(connection, exc)
                raise Dropped() from exc
            raise
        finally:
            if cursor is not None:
                cursor.close()
            if self.switch and connection.is_valid:
                self.dialect.reset_isolation_level(dbapi_connection)
            connection.close()

    def _drop_pool(self, connection: Any, exc: Exception) -> None:
        """Let go of this connection and of every other one opened before now:
        a server that dropped one (a restart) dropped them all. This is what
        SQLAlchemy's own ``Connection`` does on a disconnect."""
        invalidate_all = getattr(self.engine.pool, "_invalidate", None)
        if invalidate_all is not None:
            invalidate_all(connection, exc)
        else:  # pragma: no cover - a future SQLAlchemy without it
            connection.invalidate(exc)


class Dropped(Exception):
    """The connection was dropped by the server; the pool has let it go."""


class Cursor:
    """A DBAPI cursor that runs :class:`Compiled` statements."""

    def __init__(self, cursor: Any) -> None:
        self.raw = cursor

    def execute(self, statement: Compiled, params: Mapping[str, object]) -> Any:
        if statement.names is None:
            self.raw.execute(statement.sql, params)
        else:
            self.raw.execute(statement.sql, [params[n] for n in statement.names])
        return self.raw

    def rowcount(self, statement: Compiled, params: Mapping[str, object]) -> int:
        count: int = self.execute(statement, params).rowcount
        return count
