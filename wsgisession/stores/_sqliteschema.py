"""The SQLite store's schema: its tables and indexes, WAL mode and pragmas.

:func:`set_up_database` runs on every new connection (the file may be
new): it makes what is missing and brings a database of an older version
up to date. A table made before the ``user_key`` column existed gets it
(``ALTER TABLE ... ADD COLUMN``), the full ``user_key`` index of earlier
versions is replaced by a partial one, and their index on ``expires_at``
is dropped (sweeps walk the primary key now).
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["WAL_SIZE_LIMIT", "set_up_database"]

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS wsgisession_sessions ("
    " key TEXT PRIMARY KEY, payload BLOB NOT NULL, expires_at REAL NOT NULL"
    ") WITHOUT ROWID"
)
_CREATE_LOCKS = (
    "CREATE TABLE IF NOT EXISTS wsgisession_locks ("
    " key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL"
    ") WITHOUT ROWID"
)
_COLUMNS = "PRAGMA table_info(wsgisession_sessions)"
_ADD_USER_COLUMN = "ALTER TABLE wsgisession_sessions ADD COLUMN user_key TEXT"
_INDEXES = "PRAGMA index_list(wsgisession_sessions)"
# Only bound sessions have a user_key: a partial index leaves the others out,
# so that creating an unbound session writes one index page less.
_USER_INDEX = "wsgisession_sessions_bound_user"
_CREATE_USER_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {_USER_INDEX}"
    " ON wsgisession_sessions (user_key) WHERE user_key IS NOT NULL"
)
# The index of every row's user_key that earlier versions made.
_FULL_USER_INDEX = "wsgisession_sessions_user_key"
_DROP_FULL_USER_INDEX = f"DROP INDEX IF EXISTS {_FULL_USER_INDEX}"
# The expiry index of earlier versions: every save had to move its entry.
_EXPIRES_INDEX = "wsgisession_sessions_expires_at"
_DROP_EXPIRES_INDEX = f"DROP INDEX IF EXISTS {_EXPIRES_INDEX}"
# Once per database (WAL mode is stored in the file), then on every connection.
_SETUP = ("PRAGMA journal_mode = WAL",)
#: Bytes SQLite cuts the ``-wal`` file back to when it starts it over. Without
#: a limit the file keeps the largest size it ever reached (hundreds of MB
#: after a reader held a snapshot: no checkpoint passes it) while the app runs.
WAL_SIZE_LIMIT = 16 * 1024 * 1024
_CONNECTION_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}",
)
_SETUP_RETRY = 0.01  # seconds between tries while another connection sets up


def set_up_database(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """WAL mode, the tables and the per-connection pragmas.

    Runs on every new connection (the file may be new). Switching to WAL
    takes a lock for which SQLite does not wait (``busy_timeout`` does
    not apply), so a fresh database opened by several processes at once
    would fail all but one without a retry.
    """
    deadline = time.monotonic() + busy_timeout
    for statement in (*_SETUP, _CREATE_TABLE, _CREATE_LOCKS):
        _retried(conn, statement, deadline)
    columns = [row[1] for row in conn.execute(_COLUMNS).fetchall()]
    if "user_key" not in columns:  # a table made by an older version
        _retried(conn, _ADD_USER_COLUMN, deadline, "duplicate column")
    indexes = {row[1] for row in conn.execute(_INDEXES).fetchall()}
    if _USER_INDEX not in indexes:
        _retried(conn, _CREATE_USER_INDEX, deadline)
    if _FULL_USER_INDEX in indexes:  # replaced by the partial one
        _retried(conn, _DROP_FULL_USER_INDEX, deadline)
    if _EXPIRES_INDEX in indexes:
        _retried(conn, _DROP_EXPIRES_INDEX, deadline)
    for statement in _CONNECTION_PRAGMAS:
        conn.execute(statement).close()


def _retried(
    conn: sqlite3.Connection, statement: str, deadline: float, done_if: str = ""
) -> None:
    """Run a setup statement, retrying while the database is locked.

    An error containing ``done_if`` means another connection did it first.
    """
    while True:
        try:
            conn.execute(statement).close()
            return
        except sqlite3.OperationalError as exc:
            if done_if and done_if in str(exc):
                return
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_SETUP_RETRY)
