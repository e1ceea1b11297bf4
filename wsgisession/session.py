"""The session object: a lazily loaded mapping with Django's semantics.

A :class:`Session` loads its record on first use, records which keys this
request set or deleted (a :class:`~wsgisession.changes.ChangeSet`), and on
save applies only those changes to the record as it is now in the store
(inside the store's atomic section), so that concurrent requests changing
different keys never undo each other. The record's bytes are made and read
by :mod:`wsgisession.envelope`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import (
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    MutableMapping,
    Sequence,
    ValuesView,
)
from contextlib import AbstractContextManager
from typing import (
    Any,
)

from . import clock, envelope
from . import expiry as rules
from .changes import ChangeSet
from .config import Settings
from .cookies import check_cookie_size
from .envelope import IMMUTABLE_TYPES, CorruptRecord, Envelope
from .errors import SessionError, SessionInterrupted
from .serializers import Serializer, resolve_serializer
from .stores.base import Record, Store, storage_key
from .usersessions import handle_of, user_key

__all__ = ["Session"]

logger = logging.getLogger(__name__)

TEST_COOKIE_NAME = "testcookie"
TEST_COOKIE_VALUE = "worked"

_UNSET: Any = object()
_CREATE_ATTEMPTS = 5

#: What a request offers to load: the well-formed ids of its cookies, best first.
KeySource = Callable[[], Sequence[str]]


class Session(MutableMapping[str, Any]):
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
    _session_key: str | None = None
    _offered: Sequence[str] = ()
    _saved_at: float | None = None
    _data: dict[str, Any] | None = None
    _record: Record | None = None
    _stored = False
    _created: float | None = None
    _expiry: rules.Expiry = None
    _user: str | None = None
    _held_lock: AbstractContextManager[None] | None = None
    # Made by _load() and flush(), before anything can change.
    _changes: ChangeSet

    @classmethod
    def request_factory(
        cls, store: Store, settings: Settings, serializer: Serializer
    ) -> Callable[[KeySource | None], Session]:
        """The middleware's constructor, bound once: its arguments are already checked.

        Every request gets a session, touched or not, so the sessions it
        makes skip the checks ``__init__`` makes on arguments given by hand.
        """
        new = object.__new__

        def for_request(key_source: KeySource | None) -> Session:
            session = new(cls)
            session._store = store
            session._settings = settings
            session._serializer = serializer
            session._key_source = key_source
            return session

        return for_request

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
        client offered is only ever returned once the store knows it.
        """
        self._get_data()
        return self._session_key

    def offered_keys(self) -> Sequence[str]:
        """The ids this session will try to load, best first (no I/O; empty once loaded)."""
        source = self._key_source
        if source is not None:
            self._key_source = None
            self._offered = source()
        return self._offered

    def _get_data(self) -> dict[str, Any]:
        self.accessed = True
        data = self._data
        return data if data is not None else self._load()

    def _load(self) -> dict[str, Any]:
        """Load the first offered id the store knows (cookie tossing: see docs/security)."""
        data: dict[str, Any] | None = None
        candidates, self._offered = self.offered_keys(), ()
        self._session_key = None
        for candidate in candidates:
            data = self._open(candidate)
            if data is not None:
                break
        if data is None:
            data = {}
        if self._created is None:
            self._created = clock.now()
        self._changes = ChangeSet()
        self._data = data
        return data

    def _open(self, session_key: str) -> dict[str, Any] | None:
        """The data of ``session_key`` if its record is live, else None.

        With ``lock = true`` only a record that exists is locked: it is
        loaded, locked, then loaded again under the lock, so made-up ids
        never take (or wait for) a lock.
        """
        record = self._store.load(session_key)
        locked = False
        if record is not None and self._settings.lock and self._held_lock is None:
            self._acquire_lock(session_key)
            locked = True
            record = self._store.load(session_key)  # as it is now, under the lock
        parts = None if record is None else self._decode(record.payload)
        try:
            dead = record is None or (
                parts is not None and self._dead(parts, session_key)
            )
        except BaseException:  # the user index unreachable: release, then raise
            if locked:
                self.release_lock()
            raise
        if dead:
            if locked:
                self.release_lock()
            return None
        self._session_key, self._stored, self._record = session_key, True, record
        if parts is None:  # corrupt: the record is replaced on the next save
            return {}
        data, self._created, self._expiry, self._saved_at, self._user = parts
        return data

    def _decode(self, payload: bytes) -> Envelope | None:
        """The record's parts, or None (logged) if it is corrupt."""
        try:
            return envelope.decode(self._serializer, payload)
        except CorruptRecord as exc:
            logger.warning(
                "corrupt session record in %r (%s); starting an empty session",
                self._store,
                exc,
            )
            return None

    def _dead(self, parts: Envelope, session_key: str) -> bool:
        """Whether a stored session must load as absent: past ``absolute_timeout``,
        or bound to a user whose index no longer lists it (fail closed)."""
        timeout = self._settings.absolute_timeout
        if timeout is not None and parts.created + timeout <= clock.now():
            return True
        user = parts.user
        if user is not None and not self._store.user_index_intact(user, session_key):
            logger.info(
                "session missing from its user's index in %r; treated as revoked",
                self._store,
            )
            return True
        return False

    def _acquire_lock(self, session_key: str) -> None:
        settings = self._settings
        lock = self._store.lock(session_key, settings.lock_timeout, settings.lock_ttl)
        lock.__enter__()
        self._held_lock = lock

    def release_lock(self) -> None:
        """Release the request lock (``lock = true``); the middleware calls this.

        A script that opens a session with locking on calls it after ``save()``.
        """
        lock, self._held_lock = self._held_lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    def load(self) -> None:
        """Load the record now rather than on first use (sets ``accessed``)."""
        self._get_data()

    def has_unsaved_changes(self) -> bool:
        """Whether something changed since the last save (or load)."""
        if self._data is None:
            return False
        return bool(self._changes) or not self._stored

    def detect_changes(self) -> bool:
        """Notice values changed in place since they were loaded; True if any were."""
        data = self._data
        if data is None or not self._changes.snapshots:
            return False
        found = self._changes.detect(data, self._serializer.dumps)
        if found:
            self.modified = True
        return found

    # -- mapping -----------------------------------------------------------

    # Every accessor that hands a value to the request snapshots it first if
    # it is of a mutable type (ChangeSet.hand_out), so that a change made to
    # it in place is noticed; a value never handed out is never serialized.

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        data = self._data
        value = (data if data is not None else self._load())[key]
        if type(value) not in IMMUTABLE_TYPES:
            self._changes.hand_out(key, value, self._serializer.dumps)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._get_data()[key] = value
        self._changes.set(key)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._get_data()[key]
        self._changes.delete(key)
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
            self._changes.hand_out(key, value, self._serializer.dumps)
        return value

    def pop(self, key: str, default: Any = _UNSET) -> Any:
        """Remove ``key`` and return its value; KeyError if absent and no default."""
        data = self._get_data()
        if key in data:
            value = data.pop(key)
            self._changes.delete(key)
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

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several keys; always marks the session modified, as in Django."""
        data = self._get_data()
        incoming = dict(other, **kwargs)
        data.update(incoming)
        for key in incoming:
            self._changes.set(key)
        self.modified = True

    def keys(self) -> KeysView[str]:
        """A live view of the keys (loads the session)."""
        return self._get_data().keys()

    def values(self) -> ValuesView[Any]:
        """A live view of the values (loads the session)."""
        data = self._get_data()
        self._changes.hand_out_all(data, self._serializer.dumps)
        return data.values()

    def items(self) -> ItemsView[str, Any]:
        """A live view of the items (loads the session)."""
        data = self._get_data()
        self._changes.hand_out_all(data, self._serializer.dumps)
        return data.items()

    def clear(self) -> None:
        """Empty the session; the record stays (emptied) until the next save."""
        self._get_data()
        self._data = {}
        self._changes.clear()
        self.modified = True

    @property
    def created(self) -> float:
        """When the session was first saved, as a Unix time (now, for a new one)."""
        self._get_data()
        assert self._created is not None
        return self._created

    def is_empty(self) -> bool:
        """True when the session has neither a key nor any data (loads it)."""
        return self.session_key is None and not self._data

    def reissue_due(self) -> bool:
        """Whether ``reissue_time`` says to re-save this stored session now."""
        interval = self._settings.reissue_time
        if interval is None or not self._stored:
            return False
        saved_at = self._saved_at
        return saved_at is None or saved_at + interval <= clock.now()

    # -- expiry ------------------------------------------------------------

    def _current_expiry(self) -> rules.Expiry:
        self._get_data()
        return self._expiry

    def set_expiry(
        self, value: int | datetime.datetime | datetime.timedelta | None
    ) -> None:
        """Set when the session expires: seconds of inactivity, 0 for browser
        close, a datetime or timedelta for a fixed moment, None for the default."""
        encoded = rules.encode_expiry(value)
        if encoded is None and self._current_expiry() is None:
            return
        self._current_expiry()
        self._expiry = encoded
        self._changes.expiry_changed = True
        self.modified = True

    def get_session_cookie_age(self) -> int:
        """The default expiry in seconds (the ``cookie_age`` option)."""
        return self._settings.cookie_age

    def get_expiry_age(
        self, *, modification: datetime.datetime | None = None, expiry: Any = _UNSET
    ) -> int:
        """Seconds from ``modification`` (default: now) until the session expires."""
        if expiry is _UNSET:
            expiry = self._current_expiry()
        moment = rules.utcnow() if modification is None else modification
        return rules.expiry_age(expiry, moment, self.get_session_cookie_age())

    def get_expiry_date(
        self, *, modification: datetime.datetime | None = None, expiry: Any = _UNSET
    ) -> datetime.datetime:
        """The moment (aware, UTC) the session expires if saved at ``modification``."""
        if expiry is _UNSET:
            expiry = self._current_expiry()
        moment = rules.utcnow() if modification is None else modification
        return rules.expiry_date(expiry, moment, self.get_session_cookie_age())

    def get_expire_at_browser_close(self) -> bool:
        """Whether the cookie should last only until the browser closes."""
        expiry = self._current_expiry()
        if expiry is None:
            return bool(self._settings.expire_at_browser_close)
        return expiry == 0

    def cookie_max_age(self) -> int | None:
        """The cookie's ``Max-Age``: None for browser close, capped by ``absolute_timeout``."""
        if self.get_expire_at_browser_close():
            return None
        now = clock.now()
        age = rules.seconds_left(self._expiry, now, self.get_session_cookie_age())
        created = self._created if self._created is not None else now
        timeout = self._settings.absolute_timeout
        return int(rules.cut_by_absolute_timeout(age, created, timeout, now))

    def _expires_at(self, expiry: rules.Expiry, created: float, now: float) -> float:
        """When the store must drop the record if it is saved ``now``."""
        age = rules.seconds_left(expiry, now, self.get_session_cookie_age())
        timeout = self._settings.absolute_timeout
        return now + rules.cut_by_absolute_timeout(age, created, timeout, now)

    # -- test cookie -------------------------------------------------------

    def set_test_cookie(self) -> None:
        """Store a marker to check, on the next request, that cookies work."""
        self[TEST_COOKIE_NAME] = TEST_COOKIE_VALUE

    def test_cookie_worked(self) -> bool:
        """Whether the marker of :meth:`set_test_cookie` came back."""
        return bool(self.get(TEST_COOKIE_NAME) == TEST_COOKIE_VALUE)

    def delete_test_cookie(self) -> None:
        """Remove the marker; KeyError if it is absent."""
        del self[TEST_COOKIE_NAME]

    # -- persistence -------------------------------------------------------

    def save(self, *, detect: bool = True) -> None:
        """Write this request's changes to the store, creating the record if needed.

        Raises :class:`~wsgisession.errors.SessionInterrupted` if another
        request deleted the session meanwhile, and
        :class:`~wsgisession.errors.UnserializableValue` for a value the
        serializer refuses; in both cases the stored session is untouched.
        ``detect=False`` is for a caller that has just run
        :meth:`detect_changes`, so that values are not serialized twice.
        """
        self._get_data()
        if detect:
            self.detect_changes()
        if self._session_key is None or not self._stored:
            self._create(self._user)
        else:
            self._update()
        if self._store.client_side:  # the key is the cookie: it must fit
            assert self._session_key is not None
            check_cookie_size(self._settings, self._session_key, self.cookie_max_age())

    def flush(self) -> None:
        """Empty the session, delete its record and drop its key (logout)."""
        self.accessed = True
        key = self.session_key
        self._data = {}
        self._changes = ChangeSet()
        self._changes.cleared = True
        self._expiry = None
        self._created = clock.now()
        if key is not None:
            self._store.delete(key)
        self._session_key, self._stored, self._record = None, False, None
        self._user = None
        self.modified = True

    def cycle_key(self) -> None:
        """Move the data to a new key at once and delete the old record (login)."""
        self._get_data()
        self._move_to_new_key(self._user)

    # -- the user the session belongs to -------------------------------------

    def bind_user(self, user_id: str | int) -> None:
        """Make the session ``user_id``'s and cycle its key at once (a login).

        The store then lists it among the user's sessions (the middleware's
        ``user_sessions``) and can revoke it. ``user_id`` is a non-empty
        ``str`` or an ``int`` (taken as its decimal string); a store without
        user sessions raises NotImplementedError.
        """
        user = user_key(user_id)
        self._get_data()
        self._move_to_new_key(user)

    @property
    def user_id(self) -> str | None:
        """The user the session belongs to, or None (loads the session)."""
        self._get_data()
        return self._user

    @property
    def handle(self) -> str | None:
        """The opaque name of this session in its user's listings, or None.

        Not the key and useless as a cookie; the same across saves, new
        after ``cycle_key()``; None until the session is saved (and on a
        client-side store, which has no listings).
        """
        self._get_data()
        key = self._session_key
        if key is None or not self._stored or self._store.client_side:
            return None
        return handle_of(storage_key(key))

    def _move_to_new_key(self, user: str | None) -> None:
        """Store the data under a new key owned by ``user``, then drop the old record.

        If the old record was a user's and is gone by then (revoked while
        this request ran), the new one must not outlive it: it is deleted
        and SessionInterrupted raised, leaving this session empty.
        """
        self.detect_changes()  # the new record must carry changes made in place
        old_key = self._session_key if self._stored else None
        old_user = self._user
        self._create(user, fresh=True)
        self.modified = True
        if old_key is None:
            return
        store = self._store
        if old_user is None:
            store.delete(old_key)
        elif not store.delete_record(storage_key(old_key)):
            assert self._session_key is not None
            store.delete_record(storage_key(self._session_key))
            self._data, self._changes = {}, ChangeSet()
            self._session_key, self._stored, self._record = None, False, None
            self._user, self._expiry, self.modified = None, None, False
            raise SessionInterrupted()

    def _current_envelope(self) -> Envelope:
        """The session as it is, to be saved now."""
        assert self._data is not None and self._created is not None
        return Envelope(
            self._data, self._created, self._expiry, clock.now(), self._user
        )

    def _create(self, user: str | None, *, fresh: bool = False) -> None:
        """Store the data as a new record under a new (or reserved) key."""
        self._get_data()
        parts = self._current_envelope()._replace(user=user)
        payload = envelope.encode(self._serializer, parts)
        expires_at = self._expires_at(parts.expiry, parts.created, clock.now())
        store = self._store
        key = (None if fresh else self._session_key) or store.generate_key()
        for _ in range(_CREATE_ATTEMPTS):
            if user is None:
                stored_key = store.create(key, payload, expires_at)
            else:
                stored_key = store.create_user_session(user, key, payload, expires_at)
            if stored_key is not None:
                break
            key = store.generate_key()
        else:
            raise SessionError(
                f"{store!r} refused {_CREATE_ATTEMPTS} fresh session keys"
            )
        self._saved(stored_key, parts, Record(payload, expires_at))

    def _update(self) -> None:
        """Apply this request's changes to the stored record, atomically."""
        loaded = self._record
        outcome: list[tuple[Envelope, Record]] = []

        def merge(current: bytes | None) -> tuple[bytes, float]:
            if current is None:
                raise SessionInterrupted()
            if loaded is not None and current == loaded.payload:
                parts = self._current_envelope()  # nobody changed it meanwhile
            else:
                parts = self._merged_with(current)._replace(user=self._user)
            payload = envelope.encode(self._serializer, parts)
            expires_at = self._expires_at(parts.expiry, parts.created, clock.now())
            outcome[:] = [(parts, Record(payload, expires_at))]
            return payload, expires_at

        assert self._session_key is not None
        key = self._store.update(self._session_key, merge, loaded)
        self._saved(key, *outcome[0])

    def _merged_with(self, current: bytes) -> Envelope:
        """This request's changes applied to the record as it is in the store now."""
        base = self._decode(current)
        if base is None:
            base = Envelope({}, self._created or clock.now(), None)
        assert self._data is not None
        merged = self._changes.apply(base, self._data, self._expiry)
        return merged._replace(saved_at=clock.now())

    def _saved(self, key: str, parts: Envelope, record: Record) -> None:
        self._session_key, self._stored, self._record = key, True, record
        self._data, self._created, self._expiry, self._saved_at, self._user = parts
        envelope.remember(self._serializer, record.payload, parts)
        self._changes.watch(parts.data, self._serializer.dumps)

    def reserve_key(self) -> str:
        """Give a new session its key before it is saved (headers sent early)."""
        if self.session_key is None:
            self._session_key = self._store.generate_key()
        return self._session_key  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "unloaded" if self._data is None else f"{len(self._data)} keys"
        key = "no key" if self._session_key is None else "keyed"
        return (
            f"<Session {key}, {state}, modified={self.modified}, store={self._store!r}>"
        )
