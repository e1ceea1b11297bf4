"""SQLStore: sessions in a SQL database (PostgreSQL, MySQL/MariaDB, SQLite).

Built on SQLAlchemy 2 Core (``pip install 'wsgisession[sql]'`` plus the
database's driver). Records live in one table keyed by :func:`storage_key`
(hex SHA-256 of the id: never the raw id), with the payload as a binary
column and an index on ``expires_at``. Every statement runs on its own in
autocommit mode, so a load is one round trip and so is a save.

Saving uses a conditional ``UPDATE ... WHERE payload = :loaded`` and, when
another request wrote first, re-reads, merges and tries again (as the
Redis store does). This was measured against ``BEGIN; SELECT ... FOR
UPDATE; UPDATE; COMMIT`` on PostgreSQL 15 over loopback (psycopg 3, one
thread, a 1 KB session, 15 interleaved rounds of 200 saves, on a busy
2-core machine): the best round cost 0.17-0.22 ms a save against
0.36-0.41 ms, the median 0.43-0.47 ms against 0.51-0.91 ms. It is one
round trip instead of four, and holds no row lock between them.

The opt-in request lock is a row of ``<table>_locks`` with an expiry, on
every database (see :mod:`._sqllocks`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import now
from ..errors import StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._keptlocks import KeptTokens
from ._shared import check_timeout, pause, per_process
from ._sqlcleanup import SQLCleanup
from ._sqllocks import SQLLocks
from ._sqloptions import DEFAULT_TABLE, SQL_OPTIONS, table_name
from ._sqlpacket import max_packet, oversized, packet_now
from ._sqlrefusals import reason_of
from ._sqlrun import (
    Compiled,
    Cursor,
    Dropped,
    Runner,
    compile_statement,
    deadlocked,
)
from ._sqlusers import SQLUserSessions
from .base import Merge, Record, Store, storage_key

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["SQLStore"]

logger = logging.getLogger(__name__)

#: How many times a store operation runs before a deadlock is an error.
DEADLOCK_ATTEMPTS = 5

T = TypeVar("T")

#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50


class SQLStore(SQLLocks, SQLCleanup, SQLUserSessions, Store):
    """Sessions in the table ``table`` of the database at ``url_or_engine``.

    In an ini file: ``store = sql`` with ``sql_url`` (and ``sql_table``).

    ``url_or_engine`` is a SQLAlchemy URL (``postgresql+psycopg://...``,
    ``mysql+pymysql://...``, ``sqlite:///path``) or an existing ``Engine``
    (the app's pool and credentials are reused; ``close()`` leaves it
    open). Nothing connects until first use; the tables are created then
    if missing. ``timeout`` (seconds) bounds connecting and waiting for a
    pooled connection on engines the store builds itself (libpq counts
    whole seconds, at least 2). A database that is down or times out
    raises :class:`StoreUnavailable`; a pooled connection the server
    dropped is replaced and the statement retried once.
    """

    ini_name = "sql"
    ini_options = SQL_OPTIONS

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 5.0,
    ) -> None:
        try:
            from sqlalchemy import Engine
            from sqlalchemy.exc import SQLAlchemyError

            from ._sqlengine import build_engine, redacted, url_secrets
            from ._sqlschema import Tables
        except ImportError as exc:
            raise ImportError(
                "SQLStore needs SQLAlchemy: pip install 'wsgisession[sql]'"
            ) from exc
        timeout = check_timeout("SQLStore timeout", timeout)
        self._timeout = timeout
        self._warn_damaged = ThrottledWarning(logger)  # a client resends its cookie
        self.table = table_name("SQLStore table", table)
        self._library_error = SQLAlchemyError
        if isinstance(url_or_engine, Engine):
            self._owned = False
            engine, url = url_or_engine, url_or_engine.url
        else:
            self._owned = True
            engine, url = build_engine(url_or_engine, timeout)
        self._base = engine
        self._runner = Runner(engine, owned=self._owned)
        self._where = redacted(url)
        self._secrets = url_secrets(url)
        self._tables = Tables(self.table)
        self._sql: dict[str, Compiled] = {}
        self._max_packet: int | None = None  # MySQL's max_allowed_packet
        self._setup_locks: dict[int, threading.Lock] = {}  # see per_process()
        self._unreleased = KeptTokens[str]()  # request locks left behind: _sqllocks
        self._reruns = 0  # statements run again after a dropped connection

    # -- the store protocol -------------------------------------------------

    def load(self, session_key: str) -> Record | None:
        row = self._run("load a session", self._read, storage_key(session_key))
        return None if row is None else Record(row[0], row[1])

    def _read(self, cursor: Cursor, name: str) -> tuple[bytes, float] | None:
        params = {"b_key": name, "b_now": now()}
        row = cursor.execute(self._sql["load"], params).fetchone()
        return None if row is None else self._sound(row[0], row[1])

    def _sound(self, payload: Any, expires_at: Any) -> tuple[bytes, float] | None:
        """The row's parts, or None (logged) if its columns are of the wrong
        types (SQLite keeps whatever a damaged or hand-edited file holds) or
        its expiry is no moment (PostgreSQL's NaN passes ``expires_at > now``)."""
        # Not bytes(n) of an int: n zero bytes (psycopg2 gives a memoryview).
        payload_ok = isinstance(payload, (bytes, bytearray, memoryview))
        if payload_ok and not isinstance(expires_at, (str, bytes)):
            with contextlib.suppress(TypeError, ValueError):
                moment = float(expires_at)
                if math.isfinite(moment):
                    return bytes(payload), moment
        self._warn_damaged("%r: ignoring a damaged session row", self)
        return None

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = storage_key(session_key)
        self._check_size("create a session", payload, payload)
        written = self._run(
            "create a session", self._put_new, name, payload, expires_at
        )
        return session_key if written else None

    def _put_new(
        self,
        cursor: Cursor,
        name: str,
        payload: bytes,
        expires_at: float,
        user: str | None = None,
    ) -> bool:
        """Insert, or take over the key if its record has expired; False if
        live. ``user``: the ``user_key`` of a bound session (else NULL)."""
        params: dict[str, object] = {"b_key": name, "b_payload": payload}
        params |= {"b_exp": expires_at, "b_user": user}
        try:
            cursor.execute(self._sql["insert"], params)
            return True
        except self._runner.integrity_error:  # taken: by a live or a dead record?
            params["b_now"] = now()
            return cursor.rowcount(self._sql["take_dead"], params) == 1

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Merge and write with a conditional UPDATE; re-read and retry on conflict.

        The first try assumes the record is still what this request
        loaded, which costs no read at all when it is. A DELETE (the merge
        expired the record) rerun after a dropped connection that finds no
        row ran the first time: it is done, not lost to another deleter.
        """
        name = storage_key(session_key)
        if loaded is not None:
            current: bytes | None = loaded.payload
        else:
            current = self._payload(name)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            payload, expires_at = merge(current)
            # The copy it replaces, or the payload again if that is larger: a
            # session a later save could not send is refused now, not then.
            replaced = current if current and len(current) > len(payload) else payload
            self._check_size("update a session", payload, replaced)
            reruns = self._reruns
            written = self._run(
                "update a session", self._write, name, current, payload, expires_at
            )
            if written:
                return session_key
            deleting = current is not None and expires_at <= now()
            pause(attempt)
            current = self._payload(name)
            if deleting and current is None and self._reruns != reruns:
                # Its DELETE ran, only the reply was lost with the connection,
                # and the rerun found no row: not another request's doing (or
                # one's at that very moment, as the connections dropped).
                return session_key
        raise StoreUnavailable(
            f"too much contention on session record {name}: "
            f"{MAX_ATTEMPTS} conflicting writes in a row",
            store=repr(self),
        )

    def _payload(self, name: str) -> bytes | None:
        row = self._run("load a session", self._read, name)
        return None if row is None else row[0]

    def _write(
        self,
        cursor: Cursor,
        name: str,
        current: bytes | None,
        payload: bytes,
        expires_at: float,
    ) -> bool:
        """Write the merge of ``current``; False if the row no longer holds it."""
        moment = now()
        if current is None:
            if expires_at <= moment:  # nothing to keep: clear a dead row
                cursor.execute(
                    self._sql["delete_dead"], {"b_key": name, "b_now": moment}
                )
                return True
            return self._put_new(cursor, name, payload, expires_at)
        params: dict[str, object] = {
            "b_key": name,
            "b_loaded": current,
            "b_now": moment,
        }
        if expires_at <= moment:
            return cursor.rowcount(self._sql["delete_if"], params) == 1
        params |= {"b_payload": payload, "b_exp": expires_at}
        return cursor.rowcount(self._sql["write_if"], params) == 1

    def delete(self, session_key: str) -> None:
        self._run(
            "delete a session",
            self._execute,
            "delete",
            {"b_key": storage_key(session_key)},
        )

    def _execute(self, cursor: Cursor, name: str, params: dict[str, object]) -> int:
        return cursor.rowcount(self._sql[name], params)

    # -- tables ----------------------------------------------------------------

    def ddl(self) -> str:
        """The CREATE TABLE / CREATE INDEX statements for this database."""
        return self._tables.ddl(self._base)

    def create_tables(self) -> None:
        """Create the tables now if missing (also done on first use)."""
        with self._translate("create its tables"):
            self._ready()

    def has_tables(self) -> bool:
        """Whether the sessions table exists; unlike first use, creates nothing."""
        with self._translate("look for its tables"):
            return self._tables.sessions_exist(self._base)

    # -- connections -------------------------------------------------------------

    def _run(self, action: str, work: Callable[..., T], *args: Any) -> T:
        """``work(cursor, *args)`` on a pooled connection; run again once on a
        connection the server dropped, and up to ``DEADLOCK_ATTEMPTS`` times
        in all when the database rolled a statement back to break a deadlock
        (InnoDB does, between waiters inserting one lock row while its
        holder deletes it). Every ``work`` is autocommit statements that are
        safe to run again. Database errors become StoreUnavailable.

        The path of every load and save, so written out rather than nested
        in context managers (each costs a few µs)."""
        attempts = DEADLOCK_ATTEMPTS
        try:
            if not self._sql:
                self._ready()
            while True:
                try:
                    return self._runner.run(work, *args)
                except Dropped:
                    self._reruns += 1  # see update()
                    return self._runner.run(work, *args)  # on a fresh connection
                except self._runner.errors as exc:
                    attempts -= 1
                    if not attempts or not deadlocked(exc):
                        raise
        except Dropped as exc:
            raise self._unavailable(action, exc.__cause__ or exc) from exc
        except (self._library_error, self._runner.errors) as exc:
            raise self._unavailable(action, exc) from exc

    def _ready(self) -> None:
        """Fresh pool after fork(); tables made and statements compiled on first use."""
        self._runner.check_fork()  # never share a connection across fork()
        if not self._sql:
            with per_process(self._setup_locks, threading.Lock):
                if not self._sql:
                    self._tables.refuse_foreign(self._base)
                    self._make_tables()
                    self._max_packet = max_packet(self._base)
                    self._sql = {
                        name: compile_statement(statement, self._base)
                        for name, statement in self._tables.statements().items()
                    }

    def _make_tables(self) -> None:
        """The tables made, and ``user_key`` added to an older one, where
        missing; when the database refuses (the app's user may not create
        or alter tables), StoreUnavailable saying what to run. Only the
        ``user_key`` index missing is a warning: every request still works."""
        from ._sqlschema import IndexRefused, SchemaRefused  # needs SQLAlchemy

        try:
            self._tables.create(self._base)
            self._tables.add_user_column(self._base)
        except IndexRefused as exc:
            logger.warning("%r: %s", self, self._redact(str(exc)))
        except SchemaRefused as exc:
            raise self._unavailable("set up its tables", exc) from exc

    def _check_size(self, action: str, *copies: bytes | None) -> None:
        """StoreUnavailable, before anything is sent, for a session over what
        the database takes (MySQL's ``max_allowed_packet``: see _sqlpacket)."""
        if not self._sql:
            with self._translate(action):
                self._ready()
        reason = oversized(self._max_packet, *copies)
        if reason is not None:  # SET GLOBAL may have raised it since: look again
            before, self._max_packet = self._max_packet, self._run(action, packet_now)
            if self._owned and (self._max_packet or 0) > (before or 0):
                # The server holds them to the old one. The engine's pool
                # first: a connection opened after renew() is a new one.
                self._base.dispose()
                self._runner.renew()
            reason = oversized(self._max_packet, *copies)
        if reason is not None:
            raise StoreUnavailable(
                f"SQLStore at {self._where} could not {action}: {reason}",
                store=repr(self),
            )

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Database errors as :class:`StoreUnavailable`, with the driver's
        message and never a password (nor the statement's parameters: they
        hold session data)."""
        try:
            yield
        except Dropped as exc:
            raise self._unavailable(action, exc.__cause__ or exc) from exc
        except (self._library_error, self._runner.errors) as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailable:
        message = self._redact(reason_of(exc))
        return StoreUnavailable(
            f"SQLStore at {self._where} could not {action}: {message}",
            store=repr(self),
        )

    def _redact(self, message: str) -> str:
        """``message`` with the URL's secrets as ``***``."""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    def close(self) -> None:
        """Close the connections if the store built the engine itself (those
        of requests in flight as they end)."""
        if self._owned:
            self._runner.check_fork()  # a forked child closes only its own
            self._runner.renew()  # those of requests in flight as they end
            self._base.dispose()

    def __repr__(self) -> str:
        return f"SQLStore({self._where}, table={self.table!r})"
