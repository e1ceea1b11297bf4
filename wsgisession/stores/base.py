"""The store protocol: the few operations a session needs from its storage.

A store moves opaque records. A record is the serialized session (bytes,
made and read by the session's serializer) plus ``expires_at``, a Unix
time after which the store must treat the record as absent. Stores never
look inside the bytes.

The one operation that needs care is :meth:`Store.update`: the store reads
the record as it is now, hands it to ``merge`` and writes what ``merge``
returns, all inside its atomic section (a lock, a transaction, a CAS loop),
so that two requests changing different keys of one session both survive.

A store may also keep an index of each user's sessions (``log out
everywhere``): the four user-session methods below, optional, deal only in
*record names* (``storage_key(session_key)``), never in raw ids.

Ids passed to a store are checked with :meth:`Store.is_valid_key` by the
session before any other method sees them; stores still never trust them
as file names or raw keys, and file records under :func:`storage_key`.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

from ..clock import now
from ..keys import generate_key, is_valid_key, storage_key, user_storage_key

__all__ = [
    "MOVING_FROM",
    "PENDING_GRACE",
    "IniOption",
    "Merge",
    "Progress",
    "Record",
    "Store",
    "UnsettledRecords",
    "create_bound",
    "generate_key",
    "now",
    "storage_key",
    "store_key_check",
    "user_storage_key",
]


#: Seconds an index entry without a record is kept (a create in progress).
PENDING_GRACE = 60.0
#: The record name of the session a ``create_user_session`` in progress
#: moves to its new key (``cycle_key()``, ``bind_user()``), if any: a store
#: that ends a user's sessions to make room in their index must spare it,
#: or the move finds its own session revoked and logs the user out.
MOVING_FROM: ContextVar[str | None] = ContextVar("MOVING_FROM", default=None)


class Record(NamedTuple):
    """A stored session as loaded: its bytes, when it expires, and a version.

    ``version`` is an opaque token the store may use to skip a re-read on
    save (a memcached CAS id, say); stores that do not need one use None.
    """

    payload: bytes
    expires_at: float
    version: Any = None


class UnsettledRecords(dict[str, Record]):
    """What ``user_session_records`` returns when the user's index kept
    changing until the listing gave up reading it again: a session that
    moved to a new key meanwhile may be missing. A listing shows it as it
    is; a revocation reads the index again."""


#: ``Record`` from a tuple of all three parts, without the Python-level
#: ``__new__``: for the hot paths of the core and the memory store.
new_record = functools.partial(tuple.__new__, Record)

#: ``merge(current)`` gets the stored payload as it is inside the atomic
#: section (None if the record is gone or expired) and returns the payload
#: to write and its ``expires_at``. It may raise (``SessionInterrupted``,
#: ``UnserializableValue``) and the store then writes nothing.
Merge = Callable[[bytes | None], "tuple[bytes, float]"]

#: ``progress(done, total)``: how far :meth:`Store.clear_expired` has got.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IniOption:
    """One ini key a store takes (``redis_url``), declared in the store's module.

    ``parse(key, text)`` turns the ini string into a Python value and
    ``check(key, value)`` validates and normalizes it (see
    ``wsgisession._coerce``); ``argument`` is the keyword of the store's
    constructor that receives it (default: the key itself). The config
    schema, the command line and the docs' option table read these.
    """

    name: str
    kind: str
    default: Any
    help: str
    check: Callable[[str, Any], Any]
    parse: Callable[[str, str], Any]
    required: bool = False
    argument: str = ""

    @property
    def keyword(self) -> str:
        """The constructor keyword this key is passed as."""
        return self.argument or self.name


class Store(abc.ABC):
    """Base class of every store; subclasses fill in the abstract methods.

    A store that can be named in an ini file sets ``ini_name`` (the value
    of ``store =``) and ``ini_options`` (the keys it takes); the default
    :meth:`from_ini` passes the keys that were set to the constructor.
    """

    #: The value of ``store =`` that names this store in ini files.
    ini_name: ClassVar[str] = ""

    #: The ini keys this store takes, in the order the docs list them.
    ini_options: ClassVar[tuple[IniOption, ...]] = ()

    @classmethod
    def from_ini(cls, options: Mapping[str, Any]) -> Store:
        """The store built from checked ini values (only the keys that were set)."""
        by_name = {option.name: option.keyword for option in cls.ini_options}
        return cls(**{by_name[name]: value for name, value in options.items()})

    #: True for stores that keep the whole session in the cookie, so that
    #: the cookie value is the session key and changes with every save.
    client_side: bool = False

    def generate_key(self) -> str:
        """A fresh session id for a new record."""
        return generate_key()

    def is_valid_key(self, session_key: object) -> bool:
        """Whether ``session_key`` has the shape of an id this store issues."""
        return is_valid_key(session_key)

    @abc.abstractmethod
    def load(self, session_key: str) -> Record | None:
        """The live record of ``session_key``, or None if absent or expired."""

    @abc.abstractmethod
    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        """Store a new record; never overwrite a live one.

        Returns the key the record is now known by (``session_key`` for
        server-side stores), or None when that key is already taken.
        """

    @abc.abstractmethod
    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Atomically read the record, call ``merge`` on it, write the result.

        ``loaded`` is the record as this request loaded it (or None); a store
        may use its ``version`` to skip the re-read when nothing changed in
        between. Returns the key the record is now known by. A result whose
        ``expires_at`` is already past deletes the record.
        """

    @abc.abstractmethod
    def delete(self, session_key: str) -> None:
        """Remove the record; removing an absent record is not an error."""

    def exists(self, session_key: str) -> bool:
        """Whether ``session_key`` names a live session; never raises for bad input."""
        if not self.is_valid_key(session_key):
            return False
        return self.load(session_key) is not None

    @abc.abstractmethod
    def clear_expired(self, progress: Progress | None = None) -> int:
        """Remove expired records; return how many were removed.

        A store that works through its records in steps calls
        ``progress(done, total)`` after each (the command line draws a bar
        with it); stores that expire records natively never call it.
        """

    def sweep_expired(self, limit: int) -> int:
        """Remove at most ``limit`` expired records, cheaply; return how many.

        Meant to be called often (a bounded step each time), unlike
        :meth:`clear_expired`. The base store removes nothing and returns 0:
        stores whose server expires records natively (memcached, the cookie)
        need nothing; the memory, file, SQLite and SQL stores override it, and
        Redis prunes the indexes of users who never come back (counting the
        stale entries it removed).
        """
        return 0

    #: Whether :meth:`lock` is implemented (``lock = true`` needs it).
    supports_locking: bool = True

    def lock(
        self, session_key: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        """A context manager holding the request lock of ``session_key``.

        Entering waits at most ``timeout`` seconds, then raises
        :class:`~wsgisession.errors.LockTimeout`. A holder that dies without
        releasing loses the lock after ``ttl`` seconds at the latest.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot lock sessions")

    # -- a user's sessions (optional) -------------------------------------

    #: Whether the user-session methods below are implemented.
    supports_user_sessions: bool = False

    def _no_user_sessions(self) -> NotImplementedError:
        """The error of the user-session methods on a store that lacks them."""
        return NotImplementedError(
            f"{type(self).__name__} does not support user sessions "
            "(bind_user, user_sessions, revoke_user_sessions)"
        )

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """:meth:`create`, and note in ``user_id``'s index that the session is theirs.

        Same contract as :meth:`create` (None when the key is taken). No
        bound session may ever be missing from its user's index: write the
        index entry first (a crash then leaves only a dangling entry, pruned
        later) or both in one step (a column of the record's row), and never
        let a concurrent pruning drop the entry of a create in progress (hold
        the index's lock across both, or prune an entry without a record only
        once it is older than ``PENDING_GRACE`` seconds). Entries of dead
        records are pruned here and at listing, so the index never grows
        without bound. The index keeps ``storage_key(session_key)``, never the
        key itself.
        """
        raise self._no_user_sessions()

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        """Record name -> live record of each session in the user's index.

        At most one read per listed session (or one batched read); entries
        whose record is gone or expired are pruned. An
        ``UnsettledRecords`` (a ``dict``) if the listing may have missed a session
        that moved to a new key while it read.
        """
        raise self._no_user_sessions()

    def delete_record(self, record_name: str) -> bool:
        """Delete the record named ``record_name``; whether a live one was there.

        The revocation of a listed session: the next save of a request of
        that session finds its record gone (SessionInterrupted).
        """
        raise self._no_user_sessions()

    def drop_stale_user_indexes(self, user_id: str) -> None:
        """Before revoking all of ``user_id``'s sessions: remove copies of the
        user's index that an earlier layout of the store left where the index
        no longer lives (memcached, after a change of its server list), so
        that none lists a session this revocation cannot reach. Nothing to
        do on the other stores.
        """

    def user_index_intact(self, user_id: str, session_key: str) -> bool:
        """Whether the user's index still lists this session (checked on load).

        True, with no I/O, on every store whose index cannot vanish; a store
        that may evict it (memcached) checks, and a session missing from its
        user's index is then treated as revoked (fail closed).
        """
        return True

    def user_session_saved(
        self, user_id: str, session_key: str, expires_at: float
    ) -> None:
        """A session of ``user_id`` was saved to expire at ``expires_at``.

        Nothing to do, with no I/O, on every store whose index has no
        expiry of its own; memcached's index has one (no sweep can reach an
        item there), which it keeps past the sessions it lists.
        """

    def close(self) -> None:
        """Release the store's connections or handles; the base store holds none.

        A closed store is not used again. Closing twice is not an error.
        """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def store_key_check(store: Store) -> Callable[[object], bool]:
    """``store.is_valid_key``, or the function it calls when the store keeps
    the default (one call less for every request with a cookie)."""
    own = getattr(store, "__dict__", {})
    if type(store).is_valid_key is _DEFAULT_KEY_CHECK and "is_valid_key" not in own:
        return is_valid_key
    return store.is_valid_key


_DEFAULT_KEY_CHECK = Store.is_valid_key


def create_bound(
    store: Store,
    user_id: str,
    session_key: str,
    payload: bytes,
    expires_at: float,
    moving_from: str | None,
) -> str | None:
    """``store.create_user_session(...)``, with :data:`MOVING_FROM` set to
    the record name the session moves from (None for a new session)."""
    token = MOVING_FROM.set(moving_from)
    try:
        return store.create_user_session(user_id, session_key, payload, expires_at)
    finally:
        MOVING_FROM.reset(token)
