"""Moving a session's record to a new key (``cycle_key()``, ``bind_user()``),
as a mixin of :class:`~wsgisession.session_record.SessionRecord`: the new
key's lock, and the old record's deletion merged into the new one; a new
record's key the store refused, replaced; and the merge of a request's
changes into the record as another request left it, which a save and a
move share."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from . import clock
from .changes import ChangeSet
from .config import Settings
from .envelope import Envelope
from .errors import SessionError, SessionInterrupted, StoreUnavailable
from .serializers import Serializer
from .stores.base import Record, Store, create_bound, storage_key

__all__ = ["MoveMethods"]

_CREATE_ATTEMPTS = 5


class MoveMethods:
    """A record's move to a new key (see :meth:`SessionRecord.create` with
    ``fresh=True``)."""

    # The record's attributes (see
    # :class:`~wsgisession.session_record.SessionRecord`).
    store: Store
    settings: Settings
    serializer: Serializer
    key: str | None
    user: str | None
    expiry: Any
    created: float
    held_lock: AbstractContextManager[None] | None

    def acquire_lock(self, session_key: str) -> None:
        """Take ``session_key``'s request lock (the record provides it)."""
        raise NotImplementedError

    def seconds_left(self, now: float) -> float:
        """How long the record lives if saved ``now`` (the record provides it)."""
        raise NotImplementedError

    def update(self, data: dict[str, Any], changes: ChangeSet | None) -> dict[str, Any]:
        """Save ``data`` over the stored record (the record provides it)."""
        raise NotImplementedError

    def forget(self) -> None:
        """No record any more (the record provides it)."""
        raise NotImplementedError

    def decode(self, payload: bytes, session_key: str | None) -> Envelope | None:
        """The parts of a record, or None if corrupt (the record provides it)."""
        raise NotImplementedError

    def _create_again(
        self,
        reserved: str | None,
        user: str | None,
        payload: bytes,
        expires_at: float,
        fresh: bool,
    ) -> str:
        """The record ``SessionRecord.create()`` makes, stored under new keys,
        the store having refused its first (taken, or its server down); a
        ``reserved`` key, whose cookie went out already, cannot change."""
        store = self.store
        if reserved is not None:
            raise _reserved_key_refused(store)
        moving = storage_key(self.key) if fresh and self.key is not None else None
        for _ in range(_CREATE_ATTEMPTS - 1):
            key = store.generate_key()
            if user is None:
                stored_key = store.create(key, payload, expires_at)
            else:
                stored_key = create_bound(store, user, key, payload, expires_at, moving)
            if stored_key is not None:
                return stored_key
        raise SessionError(f"{store!r} refused {_CREATE_ATTEMPTS} fresh session keys")

    def _merged_with(
        self,
        current: bytes,
        data: dict[str, Any],
        changes: ChangeSet | None,
        now: float,
        key: str | None,
    ) -> Envelope:
        """This request's changes applied to the record as it is in the store
        now (the record of ``key``, whose decoding is kept; None: not kept)."""
        base = self.decode(current, key)
        if base is None:
            base = Envelope({}, self.created, None, None, self.user)
        # The owner as stored: only a clear() (a logout) changes it in a save,
        # so a request that loaded the session before one cannot bind it again.
        owner = base.user
        if changes is not None:
            base = changes.apply(base, data, self.expiry, self.serializer.dumps)
            if changes.cleared:
                owner = None
        return base._replace(saved_at=now, user=owner)

    def lock_new_key(self) -> AbstractContextManager[None] | None:
        """After :meth:`create` with ``fresh=True``, if the request lock is
        held: hold the new key's lock too (free: only this request knows the
        key), and hand back the old key's, for the caller to release once the
        old record is gone, so that no request of either key runs meanwhile."""
        old_lock = self.held_lock
        if old_lock is not None:
            assert self.key is not None
            self.held_lock = None
            try:
                self.acquire_lock(self.key)
            except BaseException:
                self.held_lock = old_lock
                raise
        return old_lock

    def drop_moved_from(
        self,
        old_key: str | None,
        loaded: Record | None,
        old_user: str | None,
        data: dict[str, Any],
        changes: ChangeSet | None,
        *,
        binding: bool = False,
    ) -> dict[str, Any]:
        """Delete the record this one was moved from (``old_key``, ``loaded``
        by this request) after :meth:`create` with ``fresh=True`` stored
        ``data`` anew; the session's data as saved.

        The old record is read and deleted in one atomic update, so that a
        save another request made to it meanwhile is merged into the new
        record, not lost with the old key; its owner too, unless this move
        is a login (``binding``): a ``cycle_key()`` must not bind again a
        session that a ``clear()`` (a logout) unbound meanwhile. If it is
        gone (flushed, revoked or expired while this request ran) or missing
        from ``old_user``'s index (memcached evicted it), the new one must
        not outlive it: it is deleted, this record forgotten and
        SessionInterrupted raised.
        """
        store = self.store
        if old_key is None or loaded is None or store.client_side:
            if old_key is not None:  # the cookie store: nothing to read
                store.delete(old_key)
            return data
        now = clock.now()
        merged: Envelope | None = None

        def take(current: bytes | None) -> tuple[bytes, float]:
            nonlocal merged
            if current is None:
                raise SessionInterrupted()
            merged = None
            if current != loaded.payload:  # saved by another request since
                merged = self._merged_with(current, data, changes, now, None)
            return current, 0.0  # long past: the store deletes the record

        try:
            if old_user is not None and not store.user_index_intact(old_user, old_key):
                raise SessionInterrupted()
            store.update(old_key, take, loaded)
            if merged is None:
                return data
            if not binding:  # the owner as stored: none after a clear()
                self.user = merged.user
            self.expiry = merged.expiry
            if self.seconds_left(now) <= 0:
                return merged.data  # expired at once (set_expiry(-1)): nothing to keep
            return self.update(merged.data, None)
        except SessionInterrupted:
            assert self.key is not None
            if self.user is None:
                store.delete(self.key)
            else:
                store.delete_record(storage_key(self.key))
            self.forget()
            raise


def _reserved_key_refused(store: Store) -> StoreUnavailable:
    """The error of a new session ``store`` cannot create under its reserved key."""
    return StoreUnavailable(
        f"{store!r} cannot store the new session under the key its "
        "cookie already carries (sent with a streamed response's "
        "headers): the key's server is down, or the key was taken",
        repr(store),
    )
