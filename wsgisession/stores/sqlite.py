"""SQLiteStore: sessions in one SQLite database file, shared by a host's processes.

Records live in one table keyed by :func:`storage_key` (hex SHA-256 of the
id), with a partial index on ``user_key`` (:func:`user_storage_key` of
the owner of a bound session, NULL otherwise, and then left out of the
index) for a user's sessions, and none on ``expires_at``: sweeps walk the
key instead, so that a save writes no index page. :mod:`._sqliteschema`
makes them, and brings the tables of earlier versions up to date. The
database runs in WAL mode, so loads never wait for a save, and saves are
short ``BEGIN IMMEDIATE`` transactions that wait up to ``busy_timeout`` for
one another.

A database file removed or replaced while the app runs is noticed (by
inode, see :mod:`._sqliteconn`) and recreated; no write goes to a removed
file. Request locks are rows of ``wsgisession_locks``, one per locked
session key, that a waiter takes over once their ``expires_at`` is past
(:mod:`._sqlitelocks`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from .. import _coerce as c
from ..errors import ConfigError, StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._filerecord import ensure_private_directory, user_temp_path
from ._keptlocks import KeptTokens
from ._shared import waiting_out_sqlite_busy
from ._sqliteconn import Connections
from ._sqlitefiles import private_parent
from ._sqlitelocks import SQLiteLocks
from ._sqliteschema import set_up_database
from ._sqlitestatements import (
    CLEAR_LOCKS,
    CREATE,
    DELETE,
    DELETE_IF_UNCHANGED,
    DELETE_LIVE,
    LOAD,
    SWEEP_LOCKS,
    UPDATE_IF_UNCHANGED,
    UPSERT,
    USER_SESSIONS,
)
from ._sqlitesweep import count_expired, delete_expired
from .base import (
    IniOption,
    Merge,
    Progress,
    Record,
    Store,
    new_record,
    now,
    storage_key,
    user_storage_key,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["SQLiteStore", "default_path"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_BATCH = 1000  # keys per DELETE in clear_expired(): keeps each write lock short
# A sweep reads this many keys per record it may delete: a window with none
# expired must not stall a large table's round (the sweeper only hurries
# after sweeps that removed something).
_KEYS_PER_SWEPT = 10


def _delete_window(
    conn: sqlite3.Connection, after: str, moment: float
) -> tuple[int, str | None, int]:
    """One batch of :meth:`SQLiteStore.clear_expired`: the window after ``after``."""
    return delete_expired(conn, after, _BATCH, moment, _BATCH)


_INFINITY = float("inf")


def _is_sound(row: tuple[object, object]) -> bool:
    """Whether a row has the column types this store writes (damage otherwise);
    an Infinity expiry too (SQLite keeps 9e999, no sweep ends it; NaN it
    keeps as NULL)."""
    return (
        isinstance(row[0], bytes)
        and isinstance(row[1], (int, float))
        and row[1] < _INFINITY
    )


def default_path() -> str:
    """The database ``SQLiteStore()`` uses without a path.

    ``<tempdir>/wsgisession-<uid>/sessions.sqlite3``; the directory is
    created with mode 0700 on first use and refused if another user owns
    it or can write to it.
    """
    return os.path.join(user_temp_path("wsgisession"), "sessions.sqlite3")


class SQLiteStore(SQLiteLocks, Store):
    """Sessions in an SQLite database at ``path`` (default: :func:`default_path`).

    The file is created with mode 0600, its directory (if missing) with mode
    0700. Statements take connections from a small pool (at most 32 kept
    idle), reopened in a forked child.
    ``busy_timeout`` is how many seconds a save waits for another writer
    before raising :class:`StoreUnavailable`.
    """

    ini_name = "sqlite"
    ini_options = (
        IniOption(
            "sqlite_path", "path or none", None,
            "Database file of the SQLite store; none for a private file under "
            "the system's temporary directory.",
            c.path, c.parse_optional_text, argument="path",
        ),
    )  # fmt: skip

    def __init__(
        self, path: StrPath | None = None, *, busy_timeout: float = 5.0
    ) -> None:
        if path is not None and os.fspath(path) in ("", ":memory:"):
            raise ConfigError(
                "SQLiteStore needs a file path; use MemoryStore in memory"
            )
        if not isinstance(busy_timeout, (int, float)) or not busy_timeout >= 0:
            raise ConfigError(
                f"busy_timeout must be a number >= 0, not {busy_timeout!r}"
            )
        if math.isinf(busy_timeout):
            raise ConfigError("busy_timeout must be finite")
        self.path = os.path.abspath(os.fspath(default_path() if path is None else path))
        if os.path.isdir(self.path):
            raise ConfigError(
                f"SQLiteStore path {self.path!r} is a directory, not a file"
            )
        self.busy_timeout = float(busy_timeout)
        self._warn_damaged = ThrottledWarning(logger)  # a client resends its cookie
        # The key sweep_expired() goes on after; each process draws its own
        # start, so that short-lived or forked workers cover the whole table.
        self._swept_to, self._sweep_pid = "", -1
        self._unreleased = KeptTokens[str]()  # request locks left behind: _sqlitelocks
        self._connections = Connections(
            self.path,
            self.busy_timeout,
            lambda conn: set_up_database(conn, self.busy_timeout),
            ensure_private_directory if path is None else private_parent,
        )

    # -- the store protocol -------------------------------------------------

    def load(self, session_key: str) -> Record | None:
        params = (storage_key(session_key), now())
        row = self._run("load a session", lambda c: c.execute(LOAD, params).fetchone())
        if row is None:
            return None
        if not _is_sound(row):
            self._warn_damaged("%r: ignoring a damaged session row", self)
            return None
        return new_record((row[0], row[1], None))

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        params = (storage_key(session_key), payload, expires_at, None, now())
        written = self._write("create a session", CREATE, params)
        return session_key if written == 1 else None

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Merge and write; ``loaded`` lets the common case skip the transaction.

        When the row still holds what this request loaded, one conditional
        UPDATE writes the merge of it, or one conditional DELETE removes it
        (a login's or ``cycle_key()``'s old record). Otherwise (someone wrote
        meanwhile) the row is read, merged and written in one ``BEGIN
        IMMEDIATE`` transaction, which holds the write lock across the merge.
        """
        name = storage_key(session_key)
        if loaded is not None:
            payload, expires_at = merge(loaded.payload)
            moment = now()
            params: tuple[object, ...] = (name, loaded.payload, moment)
            statement = DELETE_IF_UNCHANGED
            if expires_at > moment:
                params, statement = (payload, expires_at, *params), UPDATE_IF_UNCHANGED
            if self._write("update a session", statement, params):
                return session_key
        with self._transaction() as conn:
            with self._translate("update a session"):
                row = conn.execute(LOAD, (name, now())).fetchone()
            if row is not None and not _is_sound(row):
                row = None  # a damaged row is as good as absent
            payload, expires_at = merge(None if row is None else row[0])
            with self._translate("update a session"):
                if expires_at <= now():
                    conn.execute(DELETE, (name,))
                else:
                    conn.execute(UPSERT, (name, payload, expires_at))
        return session_key

    def delete(self, session_key: str) -> None:
        self._write("delete a session", DELETE, (storage_key(session_key),))

    # -- a user's sessions: the user_key column --------------------------------

    supports_user_sessions = True

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """Create the row with its ``user_key``: indexed in the same statement."""
        owner = user_storage_key(user_id)
        params = (storage_key(session_key), payload, expires_at, owner, now())
        written = self._write("create a session", CREATE, params)
        return session_key if written == 1 else None

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        """One query on the ``user_key`` index; expired rows go with the sweep."""
        params = (user_storage_key(user_id), now())
        rows = self._run(
            "list a user's sessions",
            lambda c: c.execute(USER_SESSIONS, params).fetchall(),
        )
        return {row[0]: Record(row[1], row[2]) for row in rows if _is_sound(row[1:])}

    def delete_record(self, record_name: str) -> bool:
        if self._write("delete a session", DELETE_LIVE, (record_name, now())):
            return True
        self._write("delete a session", DELETE, (record_name,))  # an expired one
        return False

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Delete expired rows, a window of 1000 keys per short transaction;
        each waits out other writers past the busy timeout (a cron job beside
        busy workers), up to ten busy timeouts."""
        moment = now()
        self._clear_step(lambda conn: conn.execute(CLEAR_LOCKS, (moment,)))
        total = 0
        if progress is not None:  # one read of the whole table
            total = self._clear_step(lambda conn: count_expired(conn, moment))
        removed, after = 0, ""
        while True:
            count, last, seen = self._clear_step(
                functools.partial(_delete_window, after=after, moment=moment)
            )
            removed += count
            if progress is not None:
                progress(removed, max(total, removed))
            if last is None or seen < _BATCH:  # the table's end
                return removed
            after = last

    def _clear_step(self, step: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            with self._translate("clear expired sessions"):
                return self._connections.run(step, write=True)

        return waiting_out_sqlite_busy(attempt, self.busy_timeout)

    def sweep_expired(self, limit: int) -> int:
        """Delete at most ``limit`` expired (or damaged) rows among the next
        ``10 * limit`` keys.

        Each sweep goes on, in key order, where this process's previous one
        stopped (the first at a random key), and on from the first key past
        the last: successive sweeps cover the whole table, each reading a
        bounded window. Expired request locks go too (at most ``limit``).
        """
        if limit <= 0:
            return 0
        if self._sweep_pid != os.getpid():  # a new (or forked) process
            self._swept_to, self._sweep_pid = secrets.token_hex(8), os.getpid()
        moment, after, size = now(), self._swept_to, limit * _KEYS_PER_SWEPT

        def sweep(conn: sqlite3.Connection) -> tuple[int, str]:
            removed, last, seen = delete_expired(conn, after, size, moment, limit)
            if seen < size and removed < limit:  # past the last key: from the first
                more, wrapped_to, _ = delete_expired(
                    conn, after, size - seen, moment, limit - removed, wrapped=True
                )
                removed += more
                last = wrapped_to or last
            return removed, last or after

        removed, self._swept_to = self._run("sweep expired sessions", sweep, write=True)
        self._write("sweep expired locks", SWEEP_LOCKS, (moment, limit))
        return removed

    def lock(
        self, session_key: str, timeout: float, ttl: float
    ) -> contextlib.AbstractContextManager[None]:
        """Hold a row of ``wsgisession_locks``; a waiter takes it over after
        ``ttl``, and this process's next taking at once if its release failed
        (see :mod:`._sqlitelocks`)."""
        return self._lock_row(session_key, timeout, ttl)

    def close(self) -> None:
        """Close every connection (one in use as its statement ends); the next
        statement opens a new one."""
        self._connections.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections ----------------------------------------------------------

    def _write(self, action: str, sql: str, params: tuple[object, ...]) -> int:
        """Run one writing statement; its rowcount."""
        return self._run(action, lambda c: c.execute(sql, params).rowcount, write=True)

    def _run(
        self, action: str, step: Callable[[sqlite3.Connection], T], write: bool = False
    ) -> T:
        """``step(connection)``, retried once on a fresh connection if it failed
        because the database file was removed or replaced meanwhile."""
        try:  # not self._translate(): this runs for every request
            return self._connections.run(step, write, retry_if_replaced=True)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(action, exc) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ROLLBACK if anything raises,
        an interrupt just after the BEGIN too (the transaction, left open,
        would hold the database's write lock: every other writer would be
        "locked" out, and this thread's writes never committed)."""
        with self._translate("update a session"), self._connections.holding() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn database and filesystem errors into StoreUnavailable."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"SQLiteStore at {self.path!r} could not {action}: {exc}",
            store=repr(self),
        )
