"""The parts of the session API that give a session a new key or an owner:
``cycle_key()``, ``bind_user()``, ``reserve_key()``, ``user_id`` and
``handle``, as a mixin of :class:`~wsgisession.session.Session`.

They go through the record the session loaded, and move the session's data
to a new record (``_move_to_new_key``), so that ``session.py`` keeps the
mapping and its saving.
"""

from __future__ import annotations

from typing import Any

from .changes import ChangeSet
from .errors import SessionInterrupted
from .serializers import Serializer
from .session_record import SessionRecord
from .stores.base import storage_key
from .usersessions import handle_of, user_key

__all__ = ["KeyMethods"]


class KeyMethods:
    """A session's key and the user it belongs to."""

    # The session's state (see :class:`~wsgisession.session.Session`).
    _data: dict[str, Any] | None
    _changes: ChangeSet | None
    _serializer: Serializer
    modified: bool

    def loaded_record(self) -> SessionRecord:
        """The session's record, loaded (the session provides it)."""
        raise NotImplementedError

    def detect_changes(self) -> bool:
        """Notice values changed in place (the session provides it)."""
        raise NotImplementedError

    def _move_to_new_key(self, record: SessionRecord, user: str | None) -> None:
        """Store the data under a new key owned by ``user``; the old record goes.

        A save another request made to the old record meanwhile is merged
        into the new one; if the old record was deleted meanwhile (a logout
        elsewhere, a revocation), SessionInterrupted leaves this session
        empty (see :meth:`SessionRecord.drop_moved_from`).
        """
        self.detect_changes()  # the new record must carry changes made in place
        data, changes = self._data, self._changes
        assert data is not None
        old_key, old_loaded = record.key, record.loaded
        if not record.stored:
            old_key = old_loaded = None
        data = self._data = record.create(data, user, fresh=True)
        try:
            old_lock = record.lock_new_key()  # lock = true: the lock follows
            try:
                self._data = record.drop_moved_from(old_key, old_loaded, data, changes)
            finally:
                if old_lock is not None:
                    old_lock.__exit__(None, None, None)
        except SessionInterrupted:
            self._data, self._changes, self.modified = {}, None, False
            raise
        finally:
            if self._changes is not None:  # saved: watched afresh, whatever happens
                self._changes.watch(self._data, self._serializer.dumps)
        self.modified = True

    def cycle_key(self) -> None:
        """Move the data to a new key at once and delete the old record (login)."""
        record = self.loaded_record()
        self._move_to_new_key(record, record.user)

    def bind_user(self, user_id: str | int) -> None:
        """Make the session ``user_id``'s and cycle its key at once (a login).

        The store then lists it among the user's sessions (the middleware's
        ``user_sessions``) and can revoke it. ``user_id`` is a non-empty
        ``str`` or an ``int`` (taken as its decimal string); a store without
        user sessions raises NotImplementedError.
        """
        user = user_key(user_id)
        self._move_to_new_key(self.loaded_record(), user)

    def reserve_key(self) -> str:
        """Give a new session its key before it is saved (headers sent early)."""
        record = self.loaded_record()
        if record.key is None:
            record.key = record.store.generate_key()
        return record.key

    @property
    def user_id(self) -> str | None:
        """The user the session belongs to, or None (loads the session)."""
        return self.loaded_record().user

    @property
    def handle(self) -> str | None:
        """The opaque name of this session in its user's listings, or None.

        Not the key and useless as a cookie; the same across saves, new
        after ``cycle_key()``; None until the session is saved (and on a
        client-side store, which has no listings).
        """
        record = self.loaded_record()
        key = record.key
        if key is None or not record.stored or record.store.client_side:
            return None
        return handle_of(storage_key(key))
