"""The SQL statements of the SQLite store, with the parameters each takes.

Every one names its table explicitly (``wsgisession_sessions``,
``wsgisession_locks``: see :mod:`._sqliteschema`) and binds every value.
"""

from __future__ import annotations

__all__ = [
    "CLEAR_LOCKS",
    "CREATE",
    "DELETE",
    "DELETE_IF_UNCHANGED",
    "DELETE_LIVE",
    "DROP_LOCK",
    "LOAD",
    "SWEEP_LOCKS",
    "TAKE_LOCK",
    "UPDATE_IF_UNCHANGED",
    "UPSERT",
    "USER_SESSIONS",
    "take_lock",
]

LOAD = (
    "SELECT payload, expires_at FROM wsgisession_sessions"
    " WHERE key = ? AND expires_at > ?"
)
UPSERT = (
    "INSERT INTO wsgisession_sessions (key, payload, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE"
    " SET payload = excluded.payload, expires_at = excluded.expires_at"
)
# Insert, or take over the key only if its record has expired; the owner's
# user_key goes with the row (parameters: key, payload, expires_at, user_key, now).
CREATE = (
    "INSERT INTO wsgisession_sessions (key, payload, expires_at, user_key)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
    " SET payload = excluded.payload, expires_at = excluded.expires_at,"
    " user_key = excluded.user_key"
    " WHERE wsgisession_sessions.expires_at <= ?"
)
USER_SESSIONS = (
    "SELECT key, payload, expires_at FROM wsgisession_sessions"
    " WHERE user_key = ? AND expires_at > ?"
)
DELETE_LIVE = "DELETE FROM wsgisession_sessions WHERE key = ? AND expires_at > ?"
DELETE = "DELETE FROM wsgisession_sessions WHERE key = ?"
# Write only if the row is still what this request loaded and still live:
# one statement, with no transaction around it (parameters: payload,
# expires_at, key, loaded payload, now).
UPDATE_IF_UNCHANGED = (
    "UPDATE wsgisession_sessions SET payload = ?, expires_at = ?"
    " WHERE key = ? AND payload = ? AND expires_at > ?"
)
# Delete only if the row is still what this request loaded and still live
# (parameters: key, loaded payload, now): a moved record's old row.
DELETE_IF_UNCHANGED = (
    "DELETE FROM wsgisession_sessions WHERE key = ? AND payload = ? AND expires_at > ?"
)
SWEEP_LOCKS = (
    "DELETE FROM wsgisession_locks WHERE key IN ("
    " SELECT key FROM wsgisession_locks WHERE expires_at <= ? LIMIT ?)"
)
# Take the request lock, or take it over from a holder whose ttl ran out.
TAKE_LOCK = (
    "INSERT INTO wsgisession_locks (key, token, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE"
    " SET token = excluded.token, expires_at = excluded.expires_at"
    " WHERE wsgisession_locks.expires_at <= ?"
)


def take_lock(kept: int) -> str:
    """TAKE_LOCK, also taking over a row whose token is one of ``kept`` more
    parameters: this process's, whose release failed."""
    if not kept:
        return TAKE_LOCK
    return f"{TAKE_LOCK} OR wsgisession_locks.token IN ({', '.join('?' * kept)})"


DROP_LOCK = "DELETE FROM wsgisession_locks WHERE key = ? AND token = ?"
CLEAR_LOCKS = "DELETE FROM wsgisession_locks WHERE expires_at <= ?"
