"""SQLStore's user sessions: the indexed ``user_key`` column of its table.

A bound session's row carries :func:`user_storage_key` of its owner (a
hash of the user id), written by the same INSERT as the row: the index
can never miss a session, and there is nothing to prune (expired rows go
with the sweep). Listing is one query on the ``user_key`` index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import now
from .base import Record, storage_key, user_storage_key

if TYPE_CHECKING:
    from ._sqlrun import Compiled, Cursor

__all__ = ["SQLUserSessions"]

T = TypeVar("T")


class SQLUserSessions:
    """The user-session methods of :class:`~.sql.SQLStore` (a mixin)."""

    supports_user_sessions = True

    if TYPE_CHECKING:  # provided by SQLStore
        _sql: dict[str, Compiled]

        def _run(self, action: str, work: Callable[..., T], *args: Any) -> T: ...

        #: ``_put_new(cursor, name, payload, expires_at, user_key)``.
        _put_new: Callable[..., bool]

        def _check_size(self, action: str, *copies: bytes | None) -> None: ...

        def _sound(
            self, payload: Any, expires_at: Any
        ) -> tuple[bytes, float] | None: ...

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """Create the row with its ``user_key``: indexed in the same statement."""
        name, owner = storage_key(session_key), user_storage_key(user_id)
        self._check_size("create a session", payload, payload)
        written = self._run(
            "create a session", self._put_new, name, payload, expires_at, owner
        )
        return session_key if written else None

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        """One query on the ``user_key`` index."""
        params = {"b_user": user_storage_key(user_id), "b_now": now()}
        rows = self._run("list a user's sessions", self._user_rows, params)
        found = {row[0]: self._sound(row[1], row[2]) for row in rows}
        return {name: Record(*parts) for name, parts in found.items() if parts}

    def _user_rows(self, cursor: Cursor, params: dict[str, object]) -> list[Any]:
        return list(cursor.execute(self._sql["user_sessions"], params).fetchall())

    def delete_record(self, record_name: str) -> bool:
        """Delete the row if live (one conditional DELETE: of two deleters,
        one is told it deleted it); an expired row goes with the sweep."""
        params = {"b_key": record_name, "b_now": now()}
        return self._run("delete a session", self._deleted_live, params)

    def _deleted_live(self, cursor: Cursor, params: dict[str, object]) -> bool:
        return cursor.rowcount(self._sql["delete_live"], params) == 1
