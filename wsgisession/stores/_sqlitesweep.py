"""Finding a SQLite store's expired rows without an index on ``expires_at``.

Every save moves a record's expiry, and keeping an index on it up cost a
save about a fifth of its time. So the sweeps walk the primary key instead,
a window at a time: the next keys after (or, past the last key, up to) a
given one. Each window is one read of its first and last key and one
``DELETE`` of at most so many of its expired rows; damaged expiries (text
and blobs sort after every number) go with the expired.
"""

from __future__ import annotations

import sqlite3

__all__ = ["count_expired", "delete_expired"]

_WINDOW_AFTER = (
    "SELECT min(key), max(key), count(*) FROM (SELECT key"
    " FROM wsgisession_sessions WHERE key > ? ORDER BY key LIMIT ?)"
)
_WINDOW_UP_TO = (
    "SELECT min(key), max(key), count(*) FROM (SELECT key"
    " FROM wsgisession_sessions WHERE key <= ? ORDER BY key LIMIT ?)"
)
_DELETE_EXPIRED_BETWEEN = (
    "DELETE FROM wsgisession_sessions WHERE key IN (SELECT key"
    " FROM wsgisession_sessions WHERE key >= ? AND key <= ?"
    " AND (expires_at <= ? OR expires_at >= '') ORDER BY key LIMIT ?)"
    " RETURNING key"
)
_COUNT_EXPIRED = (
    "SELECT count(*) FROM wsgisession_sessions"
    " WHERE expires_at <= ? OR expires_at >= ''"
)


def delete_expired(
    conn: sqlite3.Connection,
    key: str,
    size: int,
    moment: float,
    most: int,
    *,
    wrapped: bool = False,
) -> tuple[int, str | None, int]:
    """Delete at most ``most`` expired rows among the ``size`` keys after
    ``key`` (up to it, from the first, if ``wrapped``).

    How many went; the key a next sweep goes on after (the window's last,
    or the last deleted if ``most`` stopped the ``DELETE``; None if the
    window is empty); and how many keys the window has.
    """
    window = _WINDOW_UP_TO if wrapped else _WINDOW_AFTER
    first, last, count = conn.execute(window, (key, size)).fetchone()
    if not count:
        return 0, None, 0
    params = (first, last, moment, most)
    deleted = [row[0] for row in conn.execute(_DELETE_EXPIRED_BETWEEN, params)]
    if len(deleted) == most:  # perhaps more in the window: go on after these
        last = max(deleted)
    return len(deleted), last, count


def count_expired(conn: sqlite3.Connection, moment: float) -> int:
    """How many rows are expired (or damaged) at ``moment``: a read of the table."""
    count: int = conn.execute(_COUNT_EXPIRED, (moment,)).fetchone()[0]
    return count
