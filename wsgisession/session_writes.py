"""The parts of the session API that write its record at once: ``save()``,
``flush()``, ``cycle_key()`` and ``bind_user()``, with ``reserve_key()``,
``user_id`` and ``handle``, and the discarding of unsaved changes for a
request run again, as a mixin of :class:`~wsgisession.session.Session`.

They go through the record the session loaded (its
:class:`~wsgisession.session_record.SessionRecord`); ``session.py`` keeps
the mapping, its loading and its change tracking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .changes import ChangeSet
from .config import Settings
from .cookies import check_cookie_size
from .errors import SessionInterrupted
from .keys import KEY_LENGTH
from .serializers import Serializer
from .session_record import SessionRecord
from .stores.base import Store, storage_key
from .usersessions import handle_of, user_key

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ["UpdateSource", "WriteMethods", "refill"]

#: What ``Session.update()`` takes, as ``dict.update()`` does: a mapping or
#: key-value pairs (a name for type checkers only: ``_typeshed`` has no module).
UpdateSource: TypeAlias = "SupportsKeysAndGetItem[str, Any] | Iterable[tuple[str, Any]]"

#: A fresh server-side key's length, for a session whose key is not drawn yet.
SERVER_KEY_SHAPE = "k" * KEY_LENGTH


def refill(data: dict[str, Any] | None, saved: dict[str, Any]) -> None:
    """Make the session's dict ``data`` hold ``saved`` (the data as a save
    merged it, or emptied): the dict stays the same object, so that the
    views ``keys()``, ``values()`` and ``items()`` handed out stay live, as
    a dict's do. A key in both is never missing meanwhile: another thread
    of the request may read it during the save (docs/session.rst), and
    most saves hand back a copy of the very keys, in their order."""
    assert data is not None
    if saved is data:
        return
    if not saved:  # emptied (flush(), an interrupted move): nothing is kept
        data.clear()
        return
    order = list(saved)
    if list(data) != order:
        for gone in data.keys() - saved.keys():  # one C call: a thread may add
            data.pop(gone, None)
        if list(data) != order[: len(data)]:  # reordered: only a new fill orders it
            data.clear()
    data.update(saved)


class WriteMethods:
    """A session's saving, its key and the user it belongs to."""

    # The session's state (see :class:`~wsgisession.session.Session`).
    _data: dict[str, Any] | None
    _changes: ChangeSet | None
    _record: SessionRecord | None
    _serializer: Serializer
    _settings: Settings
    _store: Store
    modified: bool
    _saved_by_app: bool
    _key_moved: bool
    _offered: Sequence[str]
    accessed: bool
    #: The cookie's ``Max-Age`` (ExpiryMethods provides it; a stub here
    #: would come first in the session's method order).
    cookie_max_age: Callable[..., int | None]

    def loaded_record(self) -> SessionRecord:
        """The session's record, loaded (the session provides it)."""
        raise NotImplementedError

    def detect_changes(self) -> bool:
        """Notice values changed in place (the session provides it)."""
        raise NotImplementedError

    def _get_data(self) -> dict[str, Any]:
        """The data, loaded (the session provides it)."""
        raise NotImplementedError

    def _new_record(self) -> SessionRecord:
        """A record not opened yet (the session provides it)."""
        raise NotImplementedError

    def _discard_changes(self) -> None:
        """Forget this request's unsaved changes: the next use loads the stored
        record again (or starts empty). For a framework that runs a request
        again (Pyramid's retries); what the store already did stays done."""
        record = self._record
        loaded = self._data is not None  # else ``_offered`` still says what to load
        self._data, self._changes = None, None
        self.accessed = False
        if record is not None:  # a record of its own, as a request's first load
            if loaded:
                key = record.key if record.stored else None
                self._offered = (key,) if key else ()
                # A key the client's cookie may not name, or a save whose
                # cookie lifetime the fresh record does not know: the next
                # attempt saves and sends the cookie even if it changes nothing.
                moved = bool(key) and (self._key_moved or self._saved_by_app)
                self._key_moved, self._saved_by_app = moved, False
            fresh = self._record = self._new_record()
            fresh.held_lock = record.held_lock  # still released at the end
        self.modified = self._key_moved

    def save(self, *, detect: bool = True) -> None:
        """Write this request's changes to the store, creating the record if needed.

        Raises :class:`~wsgisession.errors.SessionInterrupted` if another
        request deleted the session meanwhile (or moved it: a login's
        ``cycle_key()``), and
        :class:`~wsgisession.errors.UnserializableValue` for a value the
        serializer refuses; in both cases the stored session is untouched.
        ``detect=False`` is for a caller that has just run
        :meth:`detect_changes`, so that values are not serialized twice.
        In a request, the response then sends the session's cookie, with
        the expiry this save gave the record; a cookie that would be too
        large raises :class:`~wsgisession.errors.SessionCookieTooLarge`
        here, before a server-side store writes a record no cookie can carry.
        """
        self._get_data()
        if detect:
            self.detect_changes()
        if not self._store.client_side:  # the cookie store checks its value
            self.check_cookie_fits()
        self._save_loaded()
        self._saved_by_app = True

    def _save_loaded(self, watch: bool = True) -> None:
        """:meth:`save` of a loaded session whose in-place changes are detected.

        The change set then starts afresh: with new snapshots of the values
        the request holds, so that later changes made in place are seen; or,
        ``watch`` false, the request's last save (the response's, with nothing
        after it), dropped.
        """
        record = self._record
        data = self._data
        assert record is not None and data is not None
        changes = self._changes
        if record.stored and record.key is not None:
            saved = record.update(data, changes)
        else:
            saved = record.create(data, record.user)
        if saved is not data:  # refill(), spelled out: merged with another save
            refill(data, saved)
        if changes is not None:
            if watch:
                changes.watch(data, self._serializer.dumps)
            else:  # nothing to watch: a change from now on starts a new set
                self._changes = None
        if self._store.client_side:  # the key is the cookie: it must fit
            assert record.key is not None
            check_cookie_size(self._settings, record.key, self.cookie_max_age)

    def check_cookie_fits(self) -> None:
        """SessionCookieTooLarge if a server-side store's cookie for this
        session would be too large: checked before a save writes a record
        no cookie can carry."""
        key = self._record.key if self._record is not None else None
        check_cookie_size(self._settings, key or SERVER_KEY_SHAPE, self.cookie_max_age)

    def flush(self) -> None:
        """Empty the session, delete its record and drop its key (logout)."""
        record = self.loaded_record()
        key = record.key
        refill(self._data, {})
        changes = self._changes = ChangeSet()
        changes.cleared = changes.reordered = True
        if key is not None:
            self._store.delete(key)
        record.forget()
        self.modified = True

    def _move_to_new_key(
        self, record: SessionRecord, user: str | None, *, binding: bool = False
    ) -> None:
        """Store the data under a new key owned by ``user``; the old record goes.

        A save another request made to the old record meanwhile is merged
        into the new one (its owner too, unless ``binding``: a login names
        its own); if the old record was deleted meanwhile (a logout
        elsewhere, a revocation), SessionInterrupted leaves this session
        empty (see :meth:`SessionRecord.drop_moved_from`).
        """
        self.detect_changes()  # the new record must carry changes made in place
        data, changes = self._data, self._changes
        assert data is not None
        old_key, old_loaded, old_user = record.key, record.loaded, record.user
        if not record.stored:
            old_key = old_loaded = None
        refill(data, record.create(data, user, fresh=True))
        try:
            old_lock = record.lock_new_key()  # lock = true: the lock follows
            try:
                refill(
                    data,
                    record.drop_moved_from(
                        old_key, old_loaded, old_user, data, changes, binding=binding
                    ),
                )
            finally:
                if old_lock is not None:
                    old_lock.__exit__(None, None, None)
        except SessionInterrupted:
            refill(data, {})
            self._changes, self.modified = None, False
            raise
        finally:
            if self._changes is not None:  # saved: watched afresh, whatever happens
                self._changes.watch(data, self._serializer.dumps)
        self.modified = self._key_moved = True

    def cycle_key(self) -> None:
        """Move the data to a new key at once and delete the old record (login)."""
        record = self.loaded_record()
        self._move_to_new_key(record, record.user)

    def bind_user(self, user_id: str | int) -> None:
        """Make the session ``user_id``'s and cycle its key at once (a login).

        The store then lists it among the user's sessions (the middleware's
        ``user_sessions``) and can revoke it. ``user_id`` is a non-empty
        ``str`` or an ``int`` (taken as its decimal string); a store without
        user sessions raises NotImplementedError. A session bound to another
        user is flushed first: the new user's starts empty.
        """
        user = user_key(user_id)
        if self.loaded_record().user not in (None, user):
            # As Django's login(): another user's session (its data, CSRF
            # token, created) is not the new user's; it ends, a logout.
            self.flush()
        self._move_to_new_key(self.loaded_record(), user, binding=True)

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
