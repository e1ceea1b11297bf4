"""The session's record in its store, as one request knows it.

A :class:`SessionRecord` is owned by one :class:`~wsgisession.session.Session`:
it knows which record the session is (its key), the record's parts as last
loaded or saved (creation time, expiry, last save, owner), the bytes it was
loaded with, and the request lock it holds. It opens a record, creates a
new one, and applies a :class:`~wsgisession.changes.ChangeSet` to the
record as it is now inside the store's atomic section (the merge), so that
concurrent requests changing different keys never undo each other.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

from . import clock, envelope
from . import expiry as rules
from ._recordtext import DataText
from .changes import ChangeSet
from .config import Settings
from .envelope import KEPT_DECODINGS, CorruptRecord, Envelope, Joined, Parts
from .errors import SessionError, SessionInterrupted
from .logthrottle import ThrottledWarning, WarningPerItem
from .record_moves import MoveMethods
from .request_locks import take_request_lock
from .serializers import Serializer, TaggedJSONSerializer
from .stores.base import Record, Store, create_bound, new_record, storage_key

__all__ = ["SessionRecord"]

logger = logging.getLogger(__name__)
#: A client-side store's record is what the client sent (signed, but maybe
#: by another serializer): sent again and again, it warns once a minute.
_warn_corrupt_cookie = ThrottledWarning(logger)
#: A server-side record stays corrupt until saved, its cookie coming back: one each.
_warn_corrupt_record = WarningPerItem(logger)
#: A session its user's index lost stays so until it expires, its cookie
#: coming back at its holder's will: one INFO line each, then DEBUG.
_note_orphaned = WarningPerItem(logger, level=logging.INFO)

#: How far (s) a save time may be ahead of the clock with no reissue due:
#: rounded to the microsecond, it may be a hair past the moment read.
_SAVED_AHEAD = 1.0


class SessionRecord(MoveMethods):
    """Which record a session is, its parts as last loaded or saved, its lock.

    ``key`` is None until the session has (or reserves) an id; ``stored``
    says whether a record exists under it; ``loaded`` holds the bytes last
    read or written, so that a save can tell whether another request
    changed the record meanwhile.
    """

    # No slots: what a record holds before it opens or creates one is
    # these class defaults, so that the middleware's maker sets only the
    # store, serializer and settings (setting all eleven slots cost every
    # request that loads its session about 30 bytecodes more). Opening a
    # record sets its own; a new session's sets them by :meth:`forget`.
    store: Store
    settings: Settings
    serializer: Serializer
    key: str | None = None
    stored: bool = False
    loaded: Record | None = None
    #: Set when a record opens; a session that opens none is new as of
    #: its load (the session sets it), then of its first save.
    created: float = 0.0
    expiry: rules.Expiry = None
    saved_at: float | None = None
    user: str | None = None
    held_lock: AbstractContextManager[None] | None = None
    #: False for a load the app did not ask for (see .idle_loads).
    waits_for_lock: bool = True
    #: The cookie's Max-Age as of the last save (None: browser close).
    max_age_at_save: int | None = None
    #: What :meth:`update` hands its merge (see :meth:`_merge`): the data,
    #: the changes, the save's time and its text, the record's lifetime if
    #: unchanged, and the record joined again from its kept text (or None).
    _saving: tuple[
        dict[str, Any],
        ChangeSet | None,
        float,
        str | None,
        float,
        Joined | None,
    ]
    #: What the merge's last call made (None: not called): ``_saving``'s
    #: record joined again (the same object: saved as loaded but for the
    #: save time), or the parts saved, payload, lifetime and data text.
    _outcome: Joined | tuple[Parts, bytes, float, DataText | None] | None

    # -- loading -----------------------------------------------------------

    def open(self, session_key: str) -> dict[str, Any] | None:
        """The data of ``session_key`` if its record is live, else None.

        With ``lock = true`` only a record that exists is locked: it is
        loaded, locked, then loaded again under the lock, so made-up ids
        never take (or wait for) a lock.
        """
        record = self.store.load(session_key)
        if record is None:
            return None
        locked = False
        settings = self.settings
        if settings.lock and self.held_lock is None:
            self.acquire_lock(session_key)
            locked = True
            record = self.store.load(session_key)  # as it is now, under the lock
            if record is None:
                self.release_lock()
                return None
        # envelope.decode()'s kept decoding, spelled out (no Envelope made)
        parts: Envelope | None
        kept = KEPT_DECODINGS.get(session_key)
        if (
            kept is not None
            and kept[0] == record.payload
            and type(self.serializer) is TaggedJSONSerializer
        ):
            parts = kept[1]  # shared: its data is copied below
        else:
            kept = None
            parts = self.decode(record.payload, session_key)
            if parts is None:  # corrupt: the record is replaced on the next save
                self.key, self.stored, self.loaded = session_key, True, record
                self.created = clock.now()
                return {}
        if settings.absolute_timeout is not None or parts.user is not None:
            try:
                dead = self._dead(parts, session_key)
            except BaseException:  # the user index unreachable: release, then raise
                if locked:
                    self.release_lock()
                raise
            if dead:
                if locked:
                    self.release_lock()
                return None
        self.key, self.stored, self.loaded = session_key, True, record
        data, self.created, self.expiry, self.saved_at, self.user = parts
        return data if kept is None else dict(data)

    def decode(self, payload: bytes, session_key: str | None) -> Envelope | None:
        """The parts of ``session_key``'s record, or None (logged) if it is corrupt."""
        try:
            return envelope.decode(self.serializer, payload, session_key)
        except CorruptRecord as exc:
            why = "corrupt session record in %r (%s); starting an empty session"
            if self.store.client_side:
                _warn_corrupt_cookie(why, self.store, exc)
            else:  # hashed: the process keeps no payload to tell it again
                _warn_corrupt_record(hash((session_key, payload)), why, self.store, exc)
            return None

    def _dead(self, parts: Envelope, session_key: str) -> bool:
        """Whether a stored session must load as absent: past ``absolute_timeout``,
        or bound to a user whose index no longer lists it (fail closed)."""
        timeout = self.settings.absolute_timeout
        if timeout is not None and parts.created + timeout <= clock.now():
            return True
        user = parts.user
        if user is not None and not self.store.user_index_intact(user, session_key):
            _note_orphaned(
                hash(("orphaned", session_key)),
                "session missing from its user's index in %r; treated as revoked",
                self.store,
            )
            return True
        return False

    def acquire_lock(self, session_key: str) -> None:
        """Take the request lock (see .request_locks): one try only unless ``waits_for_lock``."""
        settings = self.settings
        timeout = settings.lock_timeout if self.waits_for_lock else 0.0
        self.held_lock = take_request_lock(
            self.store, session_key, timeout, settings.lock_ttl
        )

    def release_lock(self) -> None:
        """Release the request lock, if held."""
        lock, self.held_lock = self.held_lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    # -- expiry --------------------------------------------------------------

    def seconds_left(self, now: float) -> float:
        """How long the record lives if saved ``now``: the expiry rule, cut by
        ``absolute_timeout``."""
        return lifetime(self.settings, self.expiry, self.created, now)

    def browser_session(self) -> bool:
        """Whether the cookie lasts only until the browser closes."""
        expiry = self.expiry
        if expiry is None:
            return bool(self.settings.expire_at_browser_close)
        return expiry == 0

    # -- saving --------------------------------------------------------------

    def create(
        self, data: dict[str, Any], user: str | None, *, fresh: bool = False
    ) -> dict[str, Any]:
        """Store ``data`` as a new record under a new (or reserved) key, owned
        by ``user``; the session's data as saved."""
        settings, expiry = self.settings, self.expiry
        now, now_text = clock.save_moment()
        if self.stored:
            created = self.created
        else:  # first saved now
            created = self.created = now
        payload = envelope.encode_new(
            self.serializer, data, created, expiry, now, user, now_text
        )
        if expiry is None and settings.absolute_timeout is None:
            age: float = settings.cookie_age  # lifetime(), spelled out
        else:
            age = lifetime(settings, expiry, created, now)
        store = self.store
        reserved = None if fresh else self.key  # its cookie went out already
        key = reserved or store.generate_key()
        expires_at = now + age
        if user is None:
            stored_key = store.create(key, payload, expires_at)
        else:
            moving = storage_key(self.key) if fresh and self.key is not None else None
            stored_key = create_bound(store, user, key, payload, expires_at, moving)
        if stored_key is None:  # the key is taken, or its server down
            stored_key = self._create_again(reserved, user, payload, expires_at, fresh)
        # _saved(), spelled out for a new record: not kept for decoding (many
        # new sessions never come back; one that does is decoded once, then
        # kept), nor is the key it moved from (cycle_key()).
        if self.loaded is not None:  # opened: it had a key
            assert self.key is not None
            envelope.forget(self.key)
        self.key, self.stored = stored_key, True
        self.loaded = new_record((payload, expires_at, None))
        self.saved_at, self.user = now, user
        if expiry is None:  # browser_session(), spelled out
            browser_close = settings.expire_at_browser_close
        else:
            browser_close = expiry == 0
        self.max_age_at_save = None if browser_close else int(age)
        return data

    def update(self, data: dict[str, Any], changes: ChangeSet | None) -> dict[str, Any]:
        """Apply ``changes`` to the stored record as it is now, atomically; the
        session's data as saved (merged)."""
        loaded, settings, expiry = self.loaded, self.settings, self.expiry
        now, now_text = clock.save_moment()
        # The record's lifetime if its expiry stays, and the cookie's Max-Age
        # then (lifetime() and browser_session(), spelled out by default).
        if expiry is None and settings.absolute_timeout is None:
            kept_age: float = settings.cookie_age  # an int: its own int()
            max_age = None if settings.expire_at_browser_close else settings.cookie_age
        else:
            kept_age = lifetime(settings, expiry, self.created, now)
            max_age = None if self.browser_session() else int(kept_age)
        # The record saved again from the kept text of its data as loaded
        # (this process wrote it; no key deleted since): joined before the
        # store's atomic section, written if the record is unchanged in it;
        # None: written the general way.
        key = self.key
        assert key is not None
        again = None
        if loaded is not None and (changes is None or not changes.reordered):
            again = envelope.encode_again(
                self.serializer, key, loaded.payload, data,
                () if changes is None else changes.changed,
                self.created, expiry, now, now_text, self.user,
            )  # fmt: skip
        self._saving = (data, changes, now, now_text, kept_age, again)
        self._outcome = None
        stored_key = self.store.update(key, self._merge, loaded)
        outcome = self._outcome
        if outcome is None:
            raise _merge_skipped(self.store)
        if self.user is not None:  # its index must outlive it (memcached's TTL)
            age = kept_age if outcome is again else outcome[2]
            self.store.user_session_saved(self.user, stored_key, now + age)
        if outcome is again:  # saved again: its key, creation, expiry and owner
            record = new_record((again[0], now + kept_age, None))
            if stored_key == key:  # as loaded: only the save time, the record
                self.loaded, self.saved_at = record, now  # and Max-Age are new
                self.max_age_at_save = max_age
                # Kept by encode_again(): the copy the bytes were made of. The
                # session keeps its own dict if it holds the same (most saves:
                # a refill would leave a thread reading it without its keys a
                # moment), else takes the copy's items (a key another thread
                # of the request set during the write is in neither).
                copied = again[1][0]
                return data if data == copied else copied
            # A new key: kept with the copy its bytes were made of.
            return self._saved(stored_key, again[1], record, kept_age, again[2])
        parts, payload, age, text = outcome
        record = new_record((payload, now + age, None))
        return self._saved(stored_key, parts, record, age, text)

    def _merge(self, current: bytes | None) -> tuple[bytes, float]:
        """:meth:`update`'s merge: the payload to write over ``current`` (the
        record as it is in the store's atomic section) and its expiry. Its
        outcome is kept for :meth:`update` (a store may call it again)."""
        data, changes, now, now_text, age, again = self._saving
        # Joined again (so loaded) and unchanged since; a record gone (None)
        # equals no payload: it is refused below.
        if again is not None and current == self.loaded.payload:  # type: ignore[union-attr]
            self._outcome = again
            return again[0], now + age
        if current is None:
            raise SessionInterrupted()
        loaded = self.loaded
        if loaded is not None and current == loaded.payload:  # unchanged since
            # A copy, written and kept: another thread of the request that sets
            # a key during the write must not slip into what is kept for these
            # bytes (this process would then load data the store lacks).
            parts: Parts = (dict(data), self.created, self.expiry, now, self.user)
            # Every item written again (a key deleted since, or no text kept).
            payload, text = envelope.encode_text(
                self.serializer, parts, current, None, self.key, now_text
            )
        else:
            merged = self._merged_with(current, data, changes, now, self.key)
            payload, text = envelope.encode_text(
                self.serializer, merged, saved_text=now_text
            )
            # The record's expiry as merged: another request's set_expiry()
            # stands unless this one set its own.
            age = lifetime(self.settings, merged.expiry, merged.created, now)
            parts = merged
        self._outcome = (parts, payload, age, text)
        return payload, now + age

    def _saved(
        self, key: str, parts: Parts, record: Record, age: float, text: DataText | None
    ) -> dict[str, Any]:
        """Take the record :meth:`update` saved (to live ``age`` s) as this one,
        kept for decoding (with ``text``, its data's JSON)."""
        previous_key = self.key if self.loaded is not None else None
        self.key, self.stored, self.loaded = key, True, record
        data, self.created, expiry, self.saved_at, self.user = parts
        self.expiry = expiry
        if expiry is None:  # browser_session(), spelled out
            browser_close = self.settings.expire_at_browser_close
        else:
            browser_close = expiry == 0
        self.max_age_at_save = None if browser_close else int(age)
        if previous_key is not None and previous_key != key:
            envelope.forget(previous_key)
        envelope.remember(self.serializer, key, record.payload, parts, text=text)
        return data

    def forget(self) -> None:
        """No record any more (flushed, or revoked): a new session from now on."""
        self.key, self.stored, self.loaded = None, False, None
        self.user, self.expiry, self.saved_at = None, None, None
        self.created = clock.read()  # now(), without its frame

    def reissue_due(self) -> bool:
        """Whether ``reissue_time`` says to re-save this stored record now; at
        once if its last save is ahead of the clock (set back since, or saved
        by a host ahead): the cookie's Max-Age counts real seconds meanwhile."""
        interval = self.settings.reissue_time
        if interval is None or not self.stored:
            return False
        saved_at, now = self.saved_at, clock.now()
        if saved_at is None:
            return True
        return not saved_at - _SAVED_AHEAD <= now < saved_at + interval

    def __repr__(self) -> str:
        state = "stored" if self.stored else "not stored"
        return f"<SessionRecord {state}, store={self.store!r}>"


def _merge_skipped(store: Store) -> SessionError:
    """The error of a ``store`` whose ``update()`` wrote without a merge."""
    return SessionError(
        f"{store!r}.update() returned without calling merge(): "
        "a store's update must merge before it writes"
    )


def lifetime(
    settings: Settings, expiry: rules.Expiry, created: float, now: float
) -> float:
    """How long a record of ``expiry``, created at ``created``, lives if saved
    ``now``: the expiry rule, cut by ``absolute_timeout``."""
    if expiry is None:  # the default: no date to read
        age: float = settings.cookie_age
    else:
        age = rules.seconds_left(expiry, now, settings.cookie_age)
    timeout = settings.absolute_timeout
    if timeout is None:
        return age
    return min(age, created + timeout - now)
