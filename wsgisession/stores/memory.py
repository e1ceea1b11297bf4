"""MemoryStore: sessions in a dict of this process, for tests and development."""

from __future__ import annotations

import contextlib
import heapq
import secrets
import threading
import time
from collections.abc import Iterator

from .. import clock
from ..errors import LockTimeout
from ..keys import STORAGE_KEYS, generate_key, hash_storage_key
from ._shared import per_process, undo_if_cut_short, undone_if_cut_short
from .base import Merge, Progress, Record, Store, new_record, now, storage_key

#: Longest single wait for a held lock (s): the waiter looks again after it.
#: A wake-up can be lost to another waiter's entry in the condition, left
#: there by an interrupt inside ``Condition.wait`` (after it let go of the
#: lock, before its ``try``): the next waiter is then this late at most.
_LONGEST_WAIT = 1.0


class MemoryStore(Store):
    """Keeps serialized records in a dict guarded by a lock.

    Records are bytes, so changing a value after ``save()`` never changes
    the stored session. Not shared between processes: use it for tests and
    single-process development only.

    Request locks are entries ``storage key -> (token, expires_at)``, one
    per locked session, removed on release: no two sessions share a lock,
    and a waiter takes over a lock whose holder is past its ``ttl``.
    """

    ini_name = "memory"
    supports_user_sessions = True
    #: Store.generate_key(), without its frame (a call per new session).
    generate_key = staticmethod(generate_key)

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()
        # (expires_at, name) entries for sweep_expired(): every record has
        # one no later than its expiry. A save that moves the expiry later
        # (the usual case) pushes nothing: the sweep finds the record still
        # live and pushes its new expiry then. The heap is rebuilt when
        # stale entries outnumber the records (checked where they can come
        # to: a push for a record already there, a record dropped).
        self._expiries: list[tuple[float, str]] = []
        self._held: dict[str, tuple[str, float]] = {}
        # user id -> record names of the user's sessions, and back: an entry
        # leaves with its record (_drop) or when found dead (_prune).
        self._users: dict[str, set[str]] = {}
        self._owners: dict[str, str] = {}
        self._guards: dict[int, _Guard] = {}  # see _guard

    @property
    def _guard(self) -> _Guard:
        """Guards ``_held``; this process's, made on its first use here (see
        :func:`._shared.per_process`)."""
        return per_process(self._guards, _Guard)

    def _live(self, name: str) -> Record | None:
        record = self._records.get(name)
        if record is None or record[1] <= now():
            return None
        return record

    def _push_expiry(self, name: str, expires_at: float) -> None:
        """Remember when the record stored under ``name`` expires (caller holds
        ``_lock``); a record that replaces one expiring no later needs not:
        that one's entry comes first."""
        expiries = self._expiries
        heapq.heappush(expiries, (expires_at, name))
        if len(expiries) > 2 * len(self._records) + 64:
            self._rebuild_expiries()

    def _rebuild_expiries(self) -> None:
        """One heap entry per record, the stale ones dropped (caller holds ``_lock``)."""
        self._expiries = [(r.expires_at, n) for n, r in self._records.items()]
        heapq.heapify(self._expiries)

    def load(self, session_key: str) -> Record | None:
        record = self._records.get(  # _live(), spelled out
            STORAGE_KEYS.get(session_key) or hash_storage_key(session_key)
        )
        if record is None or record[1] <= clock.read():  # now(), spelled out
            return None
        return record

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = hash_storage_key(session_key)  # mostly a new id: no lookup first
        with self._lock:
            previous = self._records.get(name)  # _live(), spelled out
            if previous is not None and previous[1] > now():
                return None
            self._records[name] = new_record((payload, expires_at, None))
            if previous is None:  # one entry and one record more: within the
                heapq.heappush(self._expiries, (expires_at, name))  # bound
            elif previous[1] > expires_at:
                self._push_expiry(name, expires_at)
        return session_key

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        name = STORAGE_KEYS.get(session_key) or hash_storage_key(session_key)
        with self._lock:
            previous = self._records.get(name)  # _live(), spelled out
            if previous is None or previous[1] <= clock.read():  # now(), spelled out
                payload, expires_at = merge(None)
            else:
                payload, expires_at = merge(previous[0])
            if expires_at <= clock.read():
                self._drop(name)
            else:
                self._records[name] = new_record((payload, expires_at, None))
                if previous is None or previous[1] > expires_at:
                    self._push_expiry(name, expires_at)
        return session_key

    def delete(self, session_key: str) -> None:
        with self._lock:
            self._drop(storage_key(session_key))

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        name = storage_key(session_key)
        with self._lock:
            previous = self._records.get(name)  # _live(), spelled out
            if previous is not None and previous[1] > now():
                return None
            names = self._users.setdefault(user_id, set())
            self._prune(names)
            names.add(name)
            self._owners[name] = user_id
            self._records[name] = new_record((payload, expires_at, None))
            if previous is None or previous[1] > expires_at:
                self._push_expiry(name, expires_at)
        return session_key

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        with self._lock:
            names = self._users.get(user_id, set())
            self._prune(names)
            if not names:
                self._users.pop(user_id, None)
            return {name: self._records[name] for name in names}

    def _prune(self, names: set[str]) -> None:
        """Drop the names whose record is gone or expired (caller holds ``_lock``)."""
        for name in [name for name in names if self._live(name) is None]:
            names.discard(name)
            self._owners.pop(name, None)

    def _drop(self, name: str) -> None:
        """Remove a record and its index entry (caller holds ``_lock``); its
        heap entry stays until swept, or the heap is rebuilt."""
        if self._records.pop(name, None) is not None and (
            len(self._expiries) > 2 * len(self._records) + 64
        ):
            self._rebuild_expiries()
        user = self._owners.pop(name, None)
        if user is not None:
            names = self._users.get(user)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._users[user]

    def delete_record(self, record_name: str) -> bool:
        with self._lock:
            live = self._live(record_name) is not None
            self._drop(record_name)
            return live

    def clear_expired(self, progress: Progress | None = None) -> int:
        with self._lock:
            moment = now()
            expired = [n for n, r in self._records.items() if r.expires_at <= moment]
            for name in expired:
                self._drop(name)
        self._drop_stale_locks()
        return len(expired)

    def sweep_expired(self, limit: int) -> int:
        """Remove at most ``limit`` expired records, soonest expired first.

        Pops the heap of expiries: the cost is that of the records removed
        (and of the stale heap entries passed), never of the live ones.
        """
        removed = 0
        with self._lock:
            moment = now()
            while removed < limit and self._expiries and self._expiries[0][0] <= moment:
                expires_at, name = heapq.heappop(self._expiries)
                record = self._records.get(name)
                if record is None or record[1] < expires_at:
                    continue  # gone, or an earlier entry stands for it
                if record[1] <= moment:
                    self._drop(name)
                    removed += 1
                else:  # saved since with a later expiry: its entry moves
                    heapq.heappush(self._expiries, (record[1], name))
        self._drop_stale_locks()
        return removed

    def _drop_stale_locks(self) -> None:
        """Forget locks whose holders never released them, once past their ttl.

        There are at most as many as requests were running at once.
        """
        with self._guard.mutex:
            moment = now()
            for name in [n for n, (_, at) in self._held.items() if at <= moment]:
                del self._held[name]

    @contextlib.contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold this session's lock entry; it is taken over after ``ttl``."""
        name, token = storage_key(session_key), secrets.token_hex(8)
        undone_if_cut_short(
            lambda: self._wait_for(name, token, timeout, ttl),
            lambda: self._release(name, token),
        )
        try:
            yield
        finally:
            try:  # here, not in undone_if_cut_short: see undo_if_cut_short
                self._release(name, token)
            except BaseException as exc:
                undo_if_cut_short(exc, lambda: self._release(name, token))
                raise

    def _wait_for(self, name: str, token: str, timeout: float, ttl: float) -> None:
        deadline = time.monotonic() + timeout
        guard = self._guard
        with guard.mutex:  # not a condition: see _Guard
            if self._take(name, token, ttl):
                return
            waits = guard.waits.get(name)
            if waits is None:
                waits = guard.waits[name] = _Waits(guard.mutex)
            waits.count += 1
            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise LockTimeout(
                            f"session lock not obtained within {timeout} s"
                        )
                    # Woken by a release, or when the holder's ttl runs out.
                    held_for = self._held[name][1] - now()
                    waits.released.wait(
                        min(remaining, max(held_for, 0.001), _LONGEST_WAIT)
                    )
                    if self._take(name, token, ttl):
                        return
            finally:
                waits.count -= 1
                if not waits.count:
                    guard.waits.pop(name, None)

    def _release(self, name: str, token: str) -> None:
        guard = self._guard
        with guard.mutex:
            if self._held.get(name, ("",))[0] == token:
                del self._held[name]
            waits = guard.waits.get(name)
            # Wake one waiter, which takes it; also when the entry was gone
            # already: a waiter woken and interrupted before it took the lock
            # runs this release as its undo, handing the wake-up on, as does
            # a release run again after an interrupt cut the first short.
            if waits is not None and self._held.get(name, ("", 0.0))[1] <= now():
                waits.released.notify()

    def _take(self, name: str, token: str, ttl: float) -> bool:
        """Take the lock ``name`` if free or expired (caller holds the guard's mutex)."""
        moment = now()
        held = self._held.get(name)
        if held is not None and held[1] > moment:
            return False
        self._held[name] = (token, moment + ttl)
        return True

    def close(self) -> None:
        """Nothing to release: the records live as long as the object."""

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._records)} records>)"


class _Guard:
    """The lock that guards the request locks' entries, and the waiters of
    each held lock. Taken with ``with guard.mutex``, a C lock entered and
    left in one step each: ``with condition`` enters Python code
    (``Condition.__enter__``) that an interrupt can cut short once the
    lock is taken, leaving it taken for good, and every request waiting."""

    __slots__ = ("mutex", "waits")

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.waits: dict[str, _Waits] = {}


class _Waits:
    """The requests waiting for one session's lock. A release wakes one of
    them, the longest waiting: waking all (one condition for the store)
    cost a queue of 1,000 requests of one session 6.6-10.3 s of CPU, under
    gevent (0.6-0.8 s now)."""

    __slots__ = ("count", "released")

    def __init__(self, mutex: threading.RLock) -> None:
        self.count = 0
        self.released = threading.Condition(mutex)
