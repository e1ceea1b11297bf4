"""Running the SQL store's hot statements straight on the pool's DBAPI connections.

SQLAlchemy Core builds each statement and compiles it once for the
database's dialect; executing it through a ``Connection`` would then cost
some 150 µs of Python per statement (measured against psycopg alone),
more than a loopback round trip. Loads and saves therefore run the
compiled SQL on a DBAPI cursor (see :class:`Runner` for whose connection),
and the driver still prepares repeated statements.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ._sqlgreen import warn_if_psycopg_blocks_gevent
from ._sqlslots import Slot, close_all, counts

if TYPE_CHECKING:  # imported by SQLStore itself, which needs SQLAlchemy at runtime
    from sqlalchemy import Engine
    from sqlalchemy.sql import ClauseElement

__all__ = [
    "Compiled",
    "Runner",
    "compile_statement",
    "compile_with_values",
    "deadlocked",
]

T = TypeVar("T")


class Compiled(NamedTuple):
    """A statement as the driver takes it: SQL text, and for positional
    parameter styles the parameter names in order (None: a dict is passed)."""

    sql: str
    names: tuple[str, ...] | None


def compile_statement(statement: ClauseElement, engine: Engine) -> Compiled:
    compiled: Any = statement.compile(dialect=engine.dialect)  # a SQLCompiler
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    return Compiled(compiled.string, names)


def compile_with_values(
    statement: ClauseElement, engine: Engine
) -> tuple[Compiled, dict[str, object]]:
    """A statement for one run, and its parameters: the values of an
    expanding list (a sweep's keys) are written into the SQL."""
    compiled: Any = statement.compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    return Compiled(compiled.string, names), compiled.construct_params()


#: Idle connections an engine the store built keeps open (as SQLAlchemy's
#: default pool_size); more, opened for a burst of requests, are closed.
KEEP_IDLE = 5

#: How often (seconds) a request waiting for a connection looks for one.
_POLL = 0.002
#: How often (seconds) a request that a full server refused asks it again.
_REASK = 0.1

#: Connections an engine the store built may have open at once (SQLAlchemy's
#: default pool_size + max_overflow): a burst of requests waits for one
#: rather than opening more than the database server accepts.
MAX_OPEN = 15


class Runner:
    """Cursors in autocommit mode, on connections of ``engine``.

    On an engine the store built (``owned``), the store keeps its own
    idle connections, each with its cursor, last used first: taking one is
    a ``list.pop()``, where a checkout from SQLAlchemy's pool costs some
    20 µs of Python (a quarter of a loopback ``SELECT``). They are opened
    through the engine (its connect arguments and set-up apply) and then
    detached from its pool; each open one is a :class:`Slot`, at most
    ``MAX_OPEN`` of them. On a given engine every statement borrows a
    connection from the app's pool, switched to autocommit for the store's
    use and switched back before it returns.

    An exception can arrive between any two of these steps (a signal
    handler's ``KeyboardInterrupt``, a ``gevent.Timeout``, an exception
    sent to the thread): a request's connection is closed by the
    ``finally`` of :meth:`run` unless it went back to the idle ones (its
    slot's ``holder`` says which), and one lost between two steps (say, just
    taken from the idle ones) is closed as it is garbage, and no longer
    counts as open (see :meth:`_reserve`).

    With psycopg 3, cursors return binary results: the server sends a
    ``bytea`` as it is rather than as hex text, which saves both sides
    the encoding (some 10 µs on a 1 KB session).
    """

    def __init__(self, engine: Engine, *, owned: bool) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.owned = owned
        self._idle: list[Slot] = []
        self._slots: list[weakref.ref[Slot]] = []  # made, gone ones pruned
        self._slots_lock = threading.Lock()
        self._binary = self.dialect.driver == "psycopg"
        self._pid = os.getpid()
        self._generation = 0  # of the connections opened since the last renew()
        # A store dropped without close() closes its idle connections too
        # (only in the process that opened them: never a forked child).
        self._finalizer = weakref.finalize(self, close_all, self._idle, self._pid)

    @property
    def errors(self) -> type[Exception]:
        """The driver's base exception class."""
        error: type[Exception] = self.dialect.loaded_dbapi.Error
        return error

    @property
    def integrity_error(self) -> type[Exception]:
        error: type[Exception] = self.dialect.loaded_dbapi.IntegrityError
        return error

    def check_fork(self) -> None:
        """In a child process: forget the parent's connections (never used,
        nor closed, here) and its pool's."""
        if self._pid != os.getpid():
            self._idle.clear()
            self._slots = []
            self._slots_lock = threading.Lock()
            self.engine.dispose(close=False)
            self._pid = os.getpid()
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, close_all, self._idle, self._pid)

    def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(cursor, *args)``; a connection the server dropped raises
        :class:`Dropped` once every connection opened before it has been
        let go. The hot path of every load and save: no context managers."""
        self.check_fork()
        if not self.owned:
            with self._borrowed() as cursor:
                return work(cursor, *args)
        holder = object()  # this call's: see Slot.holder
        slot = self._checkout(holder)
        try:
            result = work(slot.cursor, *args)
        except BaseException as exc:
            self._failed(slot, exc)
            raise
        else:
            self._put_back(slot)
        finally:
            if slot.holder is holder:  # neither idle again nor closed
                slot.close()
        return result

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor for a block (as :meth:`run` for a function)."""
        self.check_fork()
        if not self.owned:
            with self._borrowed() as cursor:
                yield cursor
            return
        holder = object()
        slot = self._checkout(holder)
        try:
            yield slot.cursor
        except BaseException as exc:
            self._failed(slot, exc)
            raise
        else:
            self._put_back(slot)
        finally:
            if slot.holder is holder:
                slot.close()

    def _checkout(self, holder: object) -> Slot:
        """An idle connection, else a new one if fewer than ``MAX_OPEN`` are
        open, else wait (up to the pool's timeout) for either."""
        try:
            slot = self._idle.pop()
        except IndexError:
            return self._wait(holder)
        slot.holder = holder
        return slot

    def _wait(self, holder: object) -> Slot:
        """A new connection, or one that comes back meanwhile. Once the server
        refused one as full while some of ours are in use (the server's
        ``max_connections`` under ``MAX_OPEN``), a request waits for a busy
        one rather than failing at once, and asks the server again every
        :data:`_REASK` seconds: another client may make room sooner, or
        ours may close (a disconnect) rather than come back."""
        wait: float = getattr(self.engine.pool, "timeout", lambda: 30.0)()
        deadline = time.monotonic() + wait
        refused: BaseException | None = None  # by a full server: see above
        ask_at = 0.0  # when to ask the server for a new connection again
        while True:
            slot = None if time.monotonic() < ask_at else self._reserve(holder)
            if slot is not None:
                try:
                    return self._open(slot)
                except BaseException as exc:
                    slot.close()
                    if not (server_full(exc) and self._any_open()):
                        raise
                    refused, ask_at = exc, time.monotonic() + _REASK
            with contextlib.suppress(IndexError):  # one came back meanwhile
                slot = self._idle.pop()
                slot.holder = holder
                return slot
            if time.monotonic() >= deadline:
                if refused is not None:  # what the server said, not "busy"
                    raise refused
                from sqlalchemy.exc import TimeoutError as PoolTimeout

                raise PoolTimeout(f"all {MAX_OPEN} connections busy for {wait} s")
            time.sleep(_POLL)

    def _any_open(self) -> bool:
        """Whether a connection of this runner is open (in use or idle)."""
        with self._slots_lock:
            return any(counts(ref) for ref in self._slots)

    def _reserve(self, holder: object) -> Slot | None:
        """A slot for a new connection, if fewer than ``MAX_OPEN`` are open.
        A slot counts while it exists and is open: one an interrupt lost
        stops counting as it is collected, without a step to be cut short."""
        with self._slots_lock:
            slots = [ref for ref in self._slots if counts(ref)]
            self._slots = slots
            if len(slots) >= MAX_OPEN:
                return None
            slot = Slot(holder)
            slots.append(weakref.ref(slot))
            return slot

    def _open(self, slot: Slot) -> Slot:
        # The generation before connecting: a renew() while it connects
        # lets this connection go too (it may hold the old setting).
        slot.generation = self._generation
        if self._binary:  # psycopg, imported before gevent patched?
            warn_if_psycopg_blocks_gevent()
        pooled = self.engine.raw_connection()
        pooled.detach()
        connection: Any = pooled.dbapi_connection
        slot.connection = connection
        raw = connection.cursor(binary=True) if self._binary else connection.cursor()
        slot.cursor = Cursor(raw)
        return slot

    def _failed(self, slot: Slot, exc: BaseException) -> None:
        """After ``exc``: keep the connection if the driver said no more than
        that the statement failed; raise :class:`Dropped` on a disconnect.
        Otherwise (interrupted mid-statement) the caller closes it."""
        if not isinstance(exc, self.errors):
            return
        connection, raw = slot.connection, slot.cursor.raw
        if not self.dialect.is_disconnect(exc, connection, raw):  # type: ignore[arg-type]
            self._put_back(slot)  # autocommit: nothing left open
            return
        slot.close()
        self.close_idle()  # a server that dropped one dropped them all
        # ... the engine's own pool too (the connection sweeps used, which
        # the retry's new connection would otherwise be taken from).
        self.engine.dispose()
        raise Dropped() from exc

    def _put_back(self, slot: Slot) -> None:
        """Among the idle ones, if they are not enough and it is not too old;
        else left to the caller, which closes it."""
        if len(self._idle) < KEEP_IDLE and slot.generation == self._generation:
            # No Python code in between that an interrupt could enter: idle
            # and no one's, or neither.
            slot.holder = None
            self._idle.append(slot)

    def close_idle(self) -> None:
        """Close the idle connections (in use ones close when put back over
        the limit, or are reopened after a disconnect)."""
        while True:
            try:
                slot = self._idle.pop()
            except IndexError:
                return
            slot.close()

    def renew(self) -> None:
        """Let go of every connection opened before now: the idle ones at
        once, those in use as they come back (a server setting they hold,
        such as MySQL's ``max_allowed_packet``, changed for new ones)."""
        self._generation += 1
        self.close_idle()

    @contextmanager
    def _borrowed(self) -> Iterator[Cursor]:
        if self._binary:  # as in _open(): the app's engine may connect now
            warn_if_psycopg_blocks_gevent()
        connection = self.engine.raw_connection()
        dbapi_connection: Any = connection.dbapi_connection
        cursor = None
        try:
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
            if connection.is_valid:
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


# SQLSTATEs of a statement the database rolled back to break a deadlock or
# a serialization conflict (40001, which MySQL also gives its deadlocks;
# 40P01, PostgreSQL's deadlock_detected; psycopg has it as ``sqlstate``),
# and the error number MySQL and MariaDB drivers give as the first argument.
_DEADLOCK_SQLSTATES = frozenset({"40001", "40P01"})
_MYSQL_DEADLOCK = 1213  # ER_LOCK_DEADLOCK


#: A server that refuses a connection for want of room: PostgreSQL's
#: too_many_connections (53300, in the text of a refused login), MySQL's and
#: MariaDB's ER_CON_COUNT_ERROR and ER_TOO_MANY_USER_CONNECTIONS.
_FULL_MESSAGES = (
    "too many clients",
    "too many connections",
    "remaining connection slots",
)
_MYSQL_FULL = frozenset({1040, 1203})


def server_full(exc: BaseException) -> bool:
    """Whether ``exc`` (from connecting) says the server has no room for
    another connection: one of those open comes back sooner than it makes room."""
    cause = getattr(exc, "orig", None) or exc
    args = cause.args
    if args and type(args[0]) is int:
        return args[0] in _MYSQL_FULL
    text = str(cause).lower()
    return any(message in text for message in _FULL_MESSAGES)


def deadlocked(exc: BaseException) -> bool:
    """Whether ``exc`` says the database rolled the statement back to break
    a deadlock: running it again is safe, and may well succeed."""
    if getattr(exc, "sqlstate", None) in _DEADLOCK_SQLSTATES:
        return True
    args = exc.args
    return bool(args) and type(args[0]) is int and args[0] == _MYSQL_DEADLOCK


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
