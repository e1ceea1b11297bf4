"""MemcachedStore's user-session methods of the store protocol, which hand
each call to its :class:`~._memcached_users.MemcachedUserIndex`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._memcached_servers import Server
    from ._memcached_users import MemcachedUserIndex
    from .base import Record

__all__ = ["MemcachedUserSessions"]


class MemcachedUserSessions:
    """The user-session methods of :class:`~.memcached.MemcachedStore` (a mixin)."""

    if TYPE_CHECKING:  # provided by MemcachedStore
        _users: MemcachedUserIndex
        _servers: list[Server]

    supports_user_sessions = True

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        return self._users.create(user_id, session_key, payload, expires_at)

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        return self._users.records(user_id)

    def delete_record(self, record_name: str) -> bool:
        return self._users.delete_record(record_name)

    def drop_stale_user_indexes(self, user_id: str) -> None:
        self._users.drop_stale_copies(user_id, self._servers)

    def user_index_intact(self, user_id: str, session_key: str) -> bool:
        """One ``get`` of the user's index: memcached may have evicted it."""
        return self._users.lists(user_id, session_key)

    def user_session_saved(
        self, user_id: str, session_key: str, expires_at: float
    ) -> None:
        """Keep the user's index alive as long as the session: its TTL is
        raised past ``expires_at`` when it would end sooner. A server that
        fails now does not fail the saved request (logged; see
        :meth:`~._memcached_users.MemcachedUserIndex.extend`)."""
        self._users.extend(user_id, expires_at)
