"""A user's sessions: listing them and revoking them ("log out everywhere").

A session bound to a user (:meth:`Session.bind_user
<wsgisession.session.Session.bind_user>`) is indexed by its store under the
user's id. This module reads that index through the store protocol
(``user_session_records``, ``delete_record``) and turns records into
:class:`UserSession` objects; the middleware's ``user_sessions`` and
``revoke_user_session(s)`` methods are thin wrappers around
:class:`UserSessions`.

Sessions are named by a *handle*: a second hash of the record's name (itself
a hash of the session id), so a listing shown to a user or an operator holds
nothing that could be presented as a cookie.
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import enum
import hashlib
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from . import clock, envelope
from .config import Settings
from .envelope import CorruptRecord, Envelope
from .errors import SessionError
from .logthrottle import WarningPerItem
from .serializers import Serializer
from .stores.base import Record, Store, UnsettledRecords

__all__ = [
    "HasHandle",
    "Unlisted",
    "UserSession",
    "UserSessions",
    "handle_of",
    "user_key",
]

logger = logging.getLogger(__name__)
#: A record no one can read stays listed until it is revoked: one WARNING.
_warn_corrupt = WarningPerItem(logger)

_HANDLE_SALT = b"wsgisession-handle:"
_HANDLE_LENGTH = 22  # 132 bits of the SHA-256
#: Rounds of a revocation racing with sessions that change keys meanwhile.
_REVOKE_ROUNDS = 20


class Unlisted(enum.Enum):
    """A record of the user's index that is no listed session."""

    #: Undecodable: its session still loads, empty, under its key (a live one).
    CORRUPT = "corrupt"
    #: Past ``absolute_timeout``: its session loads as none (not a live one).
    ENDED = "ended"


class HasHandle(Protocol):
    """A session, or a framework's view of one: what ``keep=`` takes."""

    @property
    def handle(self) -> str | None: ...


def user_key(user_id: object) -> str:
    """The owner id as stored: a non-empty ``str``, or an ``int`` as its decimal string."""
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(
            f"user_id must be a str or an int, not {type(user_id).__name__}"
        )
    user = str(user_id)
    if not user:
        raise ValueError("user_id must not be empty")
    if not user.isascii():
        try:  # stored, hashed and logged as UTF-8
            user.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "user_id must be valid Unicode text (it holds a lone surrogate)"
            ) from None
    return user


def handle_of(record_name: str) -> str:
    """The handle of the session stored under ``record_name`` (``storage_key(id)``)."""
    digest = hashlib.sha256(_HANDLE_SALT + record_name.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_HANDLE_LENGTH]


@dataclasses.dataclass(frozen=True, repr=False)
class UserSession:
    """One live session of a user, as listed by ``middleware.user_sessions()``.

    Times are Unix times (floats); ``data`` is a read-only copy of the
    session's data, for a "your devices" page (a user agent stored at login).
    """

    handle: str
    created: float
    saved_at: float
    expires_at: float
    data: Mapping[str, Any]

    def __repr__(self) -> str:
        return (
            f"UserSession(handle={self.handle!r}, created={self.created!r}, "
            f"saved_at={self.saved_at!r}, expires_at={self.expires_at!r}, "
            f"data=<{len(self.data)} keys>)"
        )


class UserSessions:
    """The user-session operations of one store, read with one serializer."""

    def __init__(self, store: Store, settings: Settings, serializer: Serializer):
        self.store = store
        self.settings = settings
        self.serializer = serializer

    def list(self, user_id: object) -> list[UserSession]:
        """The user's live sessions, the most recently saved first."""
        return self.survey(user_id)[0]

    def survey(self, user_id: object) -> tuple[builtins.list[UserSession], int]:
        """:meth:`list`, and how many more of the user's records could not be
        read (damaged, or written with another serializer or key): their
        sessions load empty, but revoking ends them too."""
        indexed = self._indexed(user_key(user_id)).values()
        found = [s for s in indexed if isinstance(s, UserSession)]
        unreadable = sum(s is Unlisted.CORRUPT for s in indexed)
        return sorted(found, key=lambda s: s.saved_at, reverse=True), unreadable

    def revoke_all(self, user_id: object, keep: str | None = None) -> int:
        """Delete every session of the user but the one with handle ``keep``.

        A record that vanished between listing and deleting may have moved
        to a new key (a concurrent ``cycle_key()``, whose new record was
        indexed before the old one was deleted): the index is read again
        until a round deletes everything it lists, from a listing that
        settled, so none escapes. Only the sessions there when it began are
        followed so (a move keeps the session's ``created``): one that logs
        in meanwhile, then moves, is listed afterwards, and a stream of
        logins cannot keep the revocation going until it gives up. A record
        this process cannot read (another serializer) or takes for ended
        (another ``absolute_timeout``) has no ``created`` to follow, yet the
        processes that read it may move it: one gone makes the next round
        follow every session, as the first does.

        It gives up (SessionError) after ``_REVOKE_ROUNDS`` rounds, and one
        more per followed session that a round after the first ended (at most
        one per session the first round listed): many stolen sessions, caught
        a few a round, do not outlast it.
        """
        user, revoked = user_key(user_id), 0
        if keep is not None and not isinstance(keep, str):
            raise TypeError(f"keep must be a Session or a handle, not {keep!r}")
        self.store.drop_stale_user_indexes(user)
        followed: set[float] | None = None  # None: every listed session
        rounds, limit, first_listed = 0, _REVOKE_ROUNDS, None
        while rounds < limit:
            rounds += 1
            records = self.store.user_session_records(user)
            first_listed = len(records) if first_listed is None else first_listed
            count, moved = self._revoke_round(user, records, keep, followed)
            revoked += count
            if followed is not None and moved is not None:
                caught = len(followed - moved)  # followed sessions ended (or gone)
                limit = min(limit + caught, _REVOKE_ROUNDS + first_listed)
            # A listing that never settled may miss a session that moved.
            if isinstance(records, UnsettledRecords) or moved is None:
                followed = None
            elif not moved:
                return revoked
            else:
                followed = moved
        raise SessionError(
            f"sessions of a user kept changing keys during revocation "
            f"({rounds} rounds) on {self.store!r}; the sessions it ended stay "
            f"ended: revoke again for the others"
        )

    def _revoke_round(
        self,
        user: str,
        records: dict[str, Record],
        keep: str | None,
        followed: set[float] | None,
    ) -> tuple[int, set[float] | None]:
        """Delete the listed ``records`` but ``keep``: how many live sessions
        it ended, and the ``created`` times of the ``followed`` ones (None:
        all) found gone, which may live on under a new key; None if an
        unlisted one went (it may have moved too, with no time to follow)."""
        revoked, moved, unlisted_gone = 0, set[float](), False
        for name, session in self._sessions(user, records).items():
            created = session.created if isinstance(session, UserSession) else None
            if created is not None and handle_of(name) == keep:
                continue
            if self.store.delete_record(name):
                # How many live sessions it ended: a corrupt record still
                # is one (it loads, empty), one past absolute_timeout not.
                if session is not Unlisted.ENDED:
                    revoked += 1
            elif created is None:  # a process that reads it may have moved it
                unlisted_gone = True
            elif followed is None or created in followed:
                moved.add(created)
        return revoked, None if unlisted_gone else moved

    def revoke_one(self, user_id: object, handle: str) -> bool:
        """Delete the user's session with ``handle``; False if there is none.

        A session found under ``handle`` whose record is gone by the time it
        is deleted may have moved to a new key (its own ``cycle_key()``
        racing this call, over and over if its holder wants it to escape):
        it is followed by its ``created``, which a move keeps, as
        :meth:`revoke_all` follows the sessions it lists.
        """
        user = user_key(user_id)
        for name, session in self._indexed(user).items():
            if isinstance(session, UserSession) and session.handle == handle:
                if self.store.delete_record(name):
                    return True
                return self._revoke_moved(user, session.created)
        return False

    def _revoke_moved(self, user: str, created: float) -> bool:
        """Delete the user's session created at ``created``, found gone from
        the record it was listed under; False if it is gone for good
        (flushed, revoked or expired meanwhile)."""
        for _ in range(_REVOKE_ROUNDS):
            records = self.store.user_session_records(user)
            moved = [
                name
                for name, session in self._sessions(user, records).items()
                if isinstance(session, UserSession) and session.created == created
            ]
            if any(self.store.delete_record(name) for name in moved):
                return True
            # A listing that never settled may miss the session's new record.
            if not moved and not isinstance(records, UnsettledRecords):
                return False
        raise SessionError(
            f"a session of a user kept changing keys during its revocation "
            f"({_REVOKE_ROUNDS} rounds) on {self.store!r}"
        )

    def _indexed(self, user: str) -> dict[str, UserSession | Unlisted]:
        """Record name -> session of each record in the user's index."""
        return self._sessions(user, self.store.user_session_records(user))

    def _sessions(
        self, user: str, records: dict[str, Record]
    ) -> dict[str, UserSession | Unlisted]:
        """Record name -> session of each of the user's ``records``.

        :class:`Unlisted` for a record that is no session to list (corrupt,
        or past ``absolute_timeout``): revoking deletes it, listing skips
        it. A record that names another owner is left out altogether.
        """
        sessions: dict[str, UserSession | Unlisted] = {}
        for name, record in records.items():
            parts = self._decode(name, record)
            if isinstance(parts, Unlisted):
                sessions[name] = parts
            elif parts.user == user:
                sessions[name] = _listed(name, parts, self._ends(parts, record))
        return sessions

    def _ends(self, parts: Envelope, record: Record) -> float:
        """When the session ends: its record's expiry, or its absolute
        timeout if that comes first (a record saved before the site set it)."""
        timeout = self.settings.absolute_timeout
        if timeout is None:
            return record.expires_at
        return min(record.expires_at, parts.created + timeout)

    def _decode(self, name: str, record: Record) -> Envelope | Unlisted:
        try:
            parts = envelope.decode(self.serializer, record.payload)
        except CorruptRecord as exc:
            seen = hash((name, record.payload))
            _warn_corrupt(seen, "corrupt session record in %r (%s)", self.store, exc)
            return Unlisted.CORRUPT
        timeout = self.settings.absolute_timeout
        if timeout is not None and parts.created + timeout <= clock.now():
            return Unlisted.ENDED
        return parts


def _listed(name: str, parts: Envelope, expires_at: float) -> UserSession:
    saved = parts.saved_at if parts.saved_at is not None else parts.created
    data = MappingProxyType(dict(parts.data))
    return UserSession(handle_of(name), parts.created, saved, expires_at, data)
