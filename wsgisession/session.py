"""The session object: a lazily loaded mapping with Django's semantics.

A :class:`Session` loads its record on first use and records which keys
this request set or deleted (a :class:`~wsgisession.changes.ChangeSet`).
Its :class:`~wsgisession.session_record.SessionRecord` knows which record
it is and saves it: only this request's changes are applied to the record
as it is now in the store, so that concurrent requests changing different
keys never undo each other.
"""

from __future__ import annotations

from collections.abc import (
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    MutableMapping,
    Sequence,
    ValuesView,
)
from typing import Any, NoReturn

from . import expiry as rules
from .changes import ChangeSet, bare_change_set
from .config import Settings
from .envelope import IMMUTABLE_TYPES
from .offered_keys import OfferedKeyMethods
from .serializers import Serializer, resolve_serializer
from .session_cookie import CookiePolicyMethods
from .session_expiry import ExpiryMethods, HasKeyMethod, TestCookieMethods
from .session_factory import bound_factory, record_factory
from .session_record import SessionRecord
from .session_writes import UpdateSource, WriteMethods, refill
from .stores.base import Store

__all__ = ["Session"]

_UNSET: Any = object()


class Session(
    OfferedKeyMethods,
    WriteMethods,
    CookiePolicyMethods,
    ExpiryMethods,
    TestCookieMethods,
    HasKeyMethod,
    MutableMapping[str, Any],
):
    """A session bound to a store. ``environ["wsgisession"]`` is one of these.

    ``accessed`` and ``modified`` are plain attributes, as in Django: any
    use of the mapping sets ``accessed``; a change sets ``modified``, and an
    app may set it itself after changing a nested value (wsgisession also
    notices such changes on its own).
    """

    # Defaults live on the class so that a request that never touches its
    # session pays only for the few attributes __init__ sets.
    accessed = False
    modified = False
    _offered: Sequence[str] = ()
    _data: dict[str, Any] | None = None
    #: Made by the load: which record the session is, its parts, its lock.
    _record: SessionRecord | None = None
    #: Made on the first change or hand-out of a mutable value (most
    #: requests only read strings, and never need one).
    _changes: ChangeSet | None = None
    #: Whether an id the request offered loaded (the response may then
    #: delete the cookie, even if more values were offered than tried).
    _offered_key_loaded = False
    #: Whether a load raised (the store down, ``LockTimeout``): the ids
    #: offered are tried again on the next use, and the response leaves the
    #: cookie as it is rather than take the session for an absent one.
    _load_failed = False
    #: Settings without the request lock, for what the session loads once
    #: the middleware released its lock (set by the factory when it locks).
    _settings_after_lock: Settings | None = None
    #: The last attempt of a request run again (pyramid_retry's number) that
    #: used this session: a subrequest's copied environ shares the session.
    _retry_attempt = 0
    #: Whether the app called :meth:`save`: the response sends the cookie.
    _saved_by_app = False
    #: Whether the session moved to a new key (``cycle_key()``,
    #: ``bind_user()``): an attempt run again must send its cookie.
    _key_moved = False
    #: Whether a middleware serves the request of this session, from the
    #: app's call to the response's end: only then is it the session of an
    #: outer middleware to a nested one (see ``nesting``), not one left in
    #: an environ that a server or a test passes again for a new request.
    _serving = False

    @classmethod
    def request_factory(
        cls, store: Store, settings: Settings, serializer: Serializer
    ) -> Callable[[], Session]:
        """The middleware's session class, bound once: its arguments are already checked.

        Every request gets a session, touched or not, so its sessions skip
        the checks ``__init__`` makes on arguments given by hand, and are of
        a subclass made here that holds the store, settings and serializer
        they share: each request sets only its ``Cookie`` header (see
        ``session_factory.for_request``).
        """
        return bound_factory(cls, store, settings, serializer)

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        session_key: str | None = None,
        *,
        serializer: Serializer | None = None,
        key_source: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings if settings is not None else Settings()
        self._serializer = serializer or resolve_serializer(self._settings.serializer)
        self._key_source = key_source
        if session_key is not None and store.is_valid_key(session_key):
            self._offered = (session_key,)

    # -- key and loading ---------------------------------------------------

    @property
    def session_key(self) -> str | None:
        """The id of the session's stored record, or None if there is none.

        Reading it loads the session (and counts as access): an id the
        client offered is only ever returned once the store knows it, and
        the key a streamed response reserved for a new session (its cookie
        went out first) only once the session is saved.
        """
        record = self.loaded_record()
        return record.key if record.stored else None

    def _get_data(self) -> dict[str, Any]:
        self.accessed = True
        data = self._data
        return data if data is not None else self._load()

    def loaded_record(self) -> SessionRecord:
        """The session's record, loaded (which counts as access)."""
        self.accessed = True
        if self._data is None:
            self._load()
        record = self._record
        assert record is not None
        return record

    def _load(self) -> dict[str, Any]:
        """Load the first offered id the store knows (cookie tossing: see
        docs/security). Its data become the session's at the end, unless
        another thread of the request loaded it meanwhile: then that one's
        stand (the thread may have written to them already)."""
        record = self._record
        source = self._key_source  # offered_keys(), spelled out
        if source is None:
            candidates = self._offered
        else:
            candidates = self._offered = self._keys_from(source)
            self._key_source = None
        if record is None:
            record = self._new_record()
            if not candidates:  # a new session: none to open
                record.forget()  # new as of now; its fields its own, read by the save
                published = self._data
                if published is None:  # see below
                    published = {}
                    self._record = record
                    self._data = published
                return published
            # Shared before it opens: another thread's load of this request
            # opens the same record, so it sees the lock this one takes (its
            # own record would wait for that lock, or take one none releases).
            self._record = record
        try:
            for candidate in candidates:
                data = record.open(candidate)
                if data is not None:
                    self._offered_key_loaded = True
                    break
            else:  # none opened: a new session, as of now
                record.forget()  # new as of now; its fields its own, read by the save
                data = {}
        except BaseException:  # not an absent session: the next use tries again
            self._offered, self._load_failed = candidates, True
            raise
        # No call between the check and the stores: CPython switches threads
        # at calls and loops only, so no other thread's load comes between.
        published = self._data
        if published is not None:
            return published
        self._offered = ()  # the record is the session's already (see above)
        self._data = data
        return data

    def _new_record(self) -> SessionRecord:
        """A record of the session's store, settings and serializer, before it
        opens one (the middleware's sessions have a faster one of their own)."""
        return record_factory(self._store, self._serializer)(self)

    def release_lock(self) -> None:
        """Release the request lock (``lock = true``); the middleware calls this.

        A script that opens a session with locking on calls it after ``save()``.
        The session takes no lock again: a load after the response (an outer
        access log reading it) would hold one that nothing releases.
        """
        after = self._settings_after_lock
        if after is not None:
            self._settings = after
        record = self._record
        if record is not None:
            if after is not None:
                record.settings = after
            record.release_lock()

    def load(self) -> None:
        """Load the record now rather than on first use (sets ``accessed``)."""
        self._get_data()

    def has_unsaved_changes(self) -> bool:
        """Whether something changed since the last save (or load)."""
        record = self._record
        if self._data is None or record is None:
            return False
        changes = self._changes
        return (changes is not None and bool(changes)) or not record.stored

    def detect_changes(self) -> bool:
        """Notice values changed in place since they were loaded; True if any were."""
        data, changes = self._data, self._changes
        if data is None or changes is None or not changes.snapshots:
            return False
        found = changes.detect(data, self._serializer.dumps)
        if found:
            self.modified = True
        return found

    def _change_set(self) -> ChangeSet:
        changes = self._changes
        if changes is None:
            changes = self._changes = ChangeSet()
        return changes

    # -- mapping -----------------------------------------------------------

    # Every accessor that hands a value to the request snapshots it first if
    # it is of a mutable type (ChangeSet.hand_out), so that a change made to
    # it in place is noticed; a value never handed out is never serialized.

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        data = self._data
        value = (data if data is not None else self._load())[key]
        if type(value) not in IMMUTABLE_TYPES:
            self._change_set().hand_out(key, value, self._serializer.dumps)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.accessed = True  # _get_data(), spelled out
        data = self._data
        (data if data is not None else self._load())[key] = value
        changes = self._changes
        if changes is None:  # the first change: see bare_change_set
            changes = bare_change_set()
            changes.changed = {key}
            changes.deleted = set()
            changes.reordered = False
            changes.snapshots = {}
            self._changes = changes  # whole: another thread may read it
        else:
            changes.set(key)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._get_data()[key]
        self._change_set().delete(key)
        self.modified = True

    def __contains__(self, key: object) -> bool:
        return key in self._get_data()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get_data())

    def __len__(self) -> int:
        return len(self._get_data())

    def __bool__(self) -> bool:
        return not self.is_empty()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``; does not mark the session modified."""
        self.accessed = True
        data = self._data
        value = (data if data is not None else self._load()).get(key, _UNSET)
        if value is _UNSET:
            return default
        if type(value) not in IMMUTABLE_TYPES:
            self._change_set().hand_out(key, value, self._serializer.dumps)
        return value

    def pop(self, key: str, default: Any = _UNSET) -> Any:
        """Remove ``key`` and return its value; KeyError if absent and no default."""
        data = self._get_data()
        if key in data:
            value = data.pop(key)
            self._change_set().delete(key)
            self.modified = True
            return value
        if default is _UNSET:
            raise KeyError(key)
        return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, storing ``default`` first if it is absent."""
        if key in self._get_data():
            return self[key]
        self[key] = default
        return default

    def update(self, other: UpdateSource = (), /, **kwargs: Any) -> None:
        """Set several keys; always marks the session modified, as in Django."""
        data = self._get_data()
        incoming = dict(other, **kwargs)
        data.update(incoming)
        changes = self._change_set()
        for key in incoming:
            changes.set(key)
        self.modified = True

    def keys(self) -> KeysView[str]:
        """A live view of the keys (loads the session)."""
        return self._get_data().keys()

    def values(self) -> ValuesView[Any]:
        """A live view of the values (loads the session)."""
        data = self._get_data()
        self._change_set().hand_out_all(data, self._serializer.dumps)
        return data.values()

    def items(self) -> ItemsView[str, Any]:
        """A live view of the items (loads the session)."""
        data = self._get_data()
        self._change_set().hand_out_all(data, self._serializer.dumps)
        return data.items()

    def clear(self) -> None:
        """Empty the session, its expiry back to the default and its owner
        (``user_id``) gone, as in Django, which keeps both among the data (a
        logout); the record stays (emptied, same key) until the next save."""
        refill(self._get_data(), {})  # the same dict: views stay live
        changes = self._change_set()
        changes.clear()
        record = self._record
        if record is not None:  # even if None: another request may set one meanwhile
            record.expiry = None
            record.user = None
            changes.expiry_changed = True
        self.modified = True

    def is_empty(self) -> bool:
        """True when the session has neither a key nor any data (loads it)."""
        return self.loaded_record().key is None and not self._data

    # -- expiry ------------------------------------------------------------

    def set_expiry(self, value: rules.ExpiryArgument) -> None:
        """Set when the session expires: seconds of inactivity, 0 for browser
        close, a datetime or timedelta for a fixed moment, None for the default."""
        encoded = rules.encode_expiry(value)
        record = self.loaded_record()
        if encoded is None and record.expiry is None:
            return
        record.expiry = encoded
        self._change_set().expiry_changed = True
        self.modified = True

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        """Refuse copy and pickle: a copy's changes would be lost or half-saved."""
        raise TypeError(
            "a Session is bound to its request and store and cannot be copied "
            "or pickled; copy its data instead: dict(session), or "
            "copy.deepcopy(dict(session))"
        )

    def __repr__(self) -> str:
        state = "unloaded" if self._data is None else f"{len(self._data)} keys"
        record = self._record
        key = "no key" if record is None or record.key is None else "keyed"
        return (
            f"<Session {key}, {state}, modified={self.modified}, store={self._store!r}>"
        )
