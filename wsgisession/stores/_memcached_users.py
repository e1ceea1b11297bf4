"""MemcachedStore's user indexes: one item per user, rewritten with CAS.

The item lives under ``key_prefix + user_storage_key(user_id) + ":user"``
(a hash of the user id), on the server that name hashes to (its TTL: below):
a magic line, then one line per session, ``<record name> <score>``. The
record name is ``storage_key`` of the id, never the id. As in the Redis
index, the score is the time (ms) the entry was written while its record
may still be on its way, and 0 once the record exists: a login writes the
entry, then the record, then sets the score to 0. Every change is a
``gets``/``cas`` loop, so concurrent logins and prunings never lose each
other's entries, and pruning (at login and listing) drops an entry whose
record is gone only if its score is 0 or older than ``PENDING_GRACE``.

memcached may evict the item like any other. The store then fails closed:
:meth:`MemcachedUserIndex.lists` (the store's ``user_index_intact``) is
asked on every load of a bound session, one ``get``, and a session its
user's index no longer lists is treated as revoked. A server that cannot
be reached raises ``StoreUnavailable`` instead, as for the records it holds:
an outage must not sign users out for good.

The item expires at its horizon (a line ``h <unix time>``), which is past
the expiry of every session it lists: a login raises it to twice its
session's lifetime from now, and so does a save that moves a listed
session's expiry past it (:meth:`MemcachedUserIndex.extend`; most saves
see, from the index read by the request's load, that it need not). So the
index of a user who never comes back goes with the sessions: memcached has
no way to list keys, and no sweep would ever reach it. An index written
without a horizon (by an earlier version) keeps no TTL until it empties.

An item is at most memcached's ``-I`` (1 MB by default, some 15,000
sessions). A login whose entry the item cannot take ends the user's
sessions that expire soonest to make room (a WARNING says so), so that a
user who piles up sessions can still log in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, Protocol

from ..errors import StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._memcached_items import USER_SUFFIX, memcached_expire
from ._shared import pause
from ._userentries import Entries, read_live, stale_entries
from .base import MOVING_FROM, Record, now, storage_key, user_storage_key

__all__ = ["USER_SUFFIX", "MemcachedCommands", "MemcachedUserIndex"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.memcached")

#: How many conflicting index writes in a row a change tolerates.
MAX_ATTEMPTS = 50
_MAGIC = b"wsu1"
#: An empty index is kept this long (s), then left to expire.
_EMPTY_TTL = 3600
#: The start of the line that holds the index's horizon (see the module doc).
_HORIZON = b"h "
#: How many users' horizons a store remembers from their indexes' reads.
_KNOWN_HORIZONS = 10_000


class MemcachedCommands(Protocol):
    """What the index needs of its MemcachedStore."""

    def _call(self, command: str, name: str, *args: Any) -> Any: ...
    def _call_on(self, server: Any, command: str, name: str, *args: Any) -> Any: ...
    def _server_for(self, name: str) -> Any: ...
    def _any_server_down(self) -> bool: ...
    def _fetch(self, name: str) -> tuple[tuple[bytes, float] | None, bytes | None]: ...
    def _name(self, session_key: str) -> str: ...
    def create(
        self, session_key: str, payload: bytes, expires_at: float
    ) -> str | None: ...


def parse(value: bytes | None) -> Entries:
    """The entries of a stored index; empty if absent or unreadable."""
    return parse_index(value)[0]


def parse_index(value: bytes | None) -> tuple[Entries, float | None]:
    """The entries of a stored index and its horizon (None if it has none),
    in one pass; no entries if absent or unreadable."""
    entries: Entries = {}
    if value is None:
        return entries, None
    lines = value.split(b"\n")
    if lines[0] != _MAGIC:
        return entries, None
    horizon = None
    for line in lines[1:]:
        if line.startswith(_HORIZON):
            if line[len(_HORIZON) :].isdigit():
                horizon = float(line[len(_HORIZON) :])
            continue
        name, _, score = line.decode("ascii", "replace").partition(" ")
        if len(name) == 64 and score.isdigit():
            entries[name] = int(score)
    return entries, horizon


def encode(entries: Entries, horizon: float | None = None) -> bytes:
    lines = [f"{name} {score}".encode() for name, score in sorted(entries.items())]
    if horizon is not None and entries:
        lines.append(_HORIZON + b"%d" % math.ceil(horizon))
    return b"\n".join([_MAGIC, *lines])


def horizon_for(expires_at: float) -> float:
    """The horizon a session expiring at ``expires_at`` asks of its index:
    twice its lifetime from now, so that only a save past half of it
    rewrites the index."""
    return expires_at + max(expires_at - now(), 0.0)


def index_ttl(entries: Entries, horizon: float | None) -> int:
    """The memcached expiry time of an index holding ``entries``."""
    if not entries:
        return _EMPTY_TTL
    if horizon is None:  # written by an earlier version: no known bound
        return 0
    moment = now()
    return memcached_expire(max(horizon, moment + 1.0), moment) or 0


class MemcachedUserIndex:
    """The user-session operations of one MemcachedStore."""

    def __init__(self, store: MemcachedCommands, key_prefix: str) -> None:
        self._store, self._prefix = store, key_prefix
        # A user who logs in again and again makes room at each login.
        self._warn_full = ThrottledWarning(logger)
        # Every revocation while a server is down.
        self._warn_copy_kept = ThrottledWarning(logger)
        # Every save that moves an expiry while the index's server is down.
        self._warn_horizon = ThrottledWarning(logger)
        # User -> the horizon of the index as this process last read it.
        self._horizons: dict[str, float] = {}

    def key(self, user_id: str) -> str:
        """The name of the user's index item."""
        return self._prefix + user_storage_key(user_id) + USER_SUFFIX

    def lists(self, user_id: str, session_key: str) -> bool:
        """Whether the user's index lists the session (one ``get``)."""
        value = self._store._call("get", self.key(user_id))
        entries, horizon = parse_index(value)
        self._remember(user_id, entries, horizon)
        return storage_key(session_key) in entries

    def extend(self, user_id: str, expires_at: float) -> None:
        """A listed session of the user was saved to expire at ``expires_at``:
        raise the index's horizon past it, unless the index as last read
        by this process already reaches it (no I/O then). An index gone
        (evicted) stays gone: its sessions are revoked. A failure does not
        fail the save, which is done, but is logged: the index may now
        expire first (the next save in this process tries again)."""
        if self._horizons.get(user_id, -math.inf) >= expires_at:
            return
        try:
            self._change(user_id, bool, horizon_for(expires_at))
        except StoreUnavailable as exc:
            why = "could not keep the user index past a saved session's expiry: %s"
            self._warn_horizon(why, exc)

    def _remember(self, user_id: str, entries: Entries, horizon: float | None) -> None:
        """Keep the horizon of the user's index as read or written, for
        :meth:`extend`; an index of an earlier version, which has none,
        never expires (nothing to raise)."""
        if not entries:
            self._horizons.pop(user_id, None)
            return
        if horizon is None:
            horizon = math.inf
        if len(self._horizons) >= _KNOWN_HORIZONS:
            self._horizons.clear()
        self._horizons[user_id] = horizon

    def drop_stale_copies(self, user_id: str, servers: Sequence[Any]) -> None:
        """Delete the user's index on every server but its own: a copy that
        an earlier server list left there (still that of the old processes
        of a rolling deploy) would list sessions that a revocation through
        this list cannot reach, bringing them back if that list returns.
        A server that cannot be reached keeps its copy (logged), and so does
        one that failed in the last few seconds, not asked again: a stalled
        server would hold every revocation for its timeout.

        A copy that is the very item the index's own server holds (the same
        value and CAS token: one server listed under two names, its host
        name and its address) is the live index, and stays; the delete is
        a ``cas``, so a copy that changed since it was read stays too."""
        key = self.key(user_id)
        home = self._store._server_for(key)
        for server in servers:
            if server is home:
                continue
            if server.down:
                self._warn_copy_kept(
                    "could not remove a stale user index: memcached server %s is down",
                    server.spec,
                )
                continue
            try:
                self._drop_copy(server, home, key)
            except StoreUnavailable as exc:
                self._warn_copy_kept("could not remove a stale user index: %s", exc)

    def _drop_copy(self, server: Any, home: Any, key: str) -> None:
        """Delete ``key`` on ``server`` unless it is the item on ``home``."""
        call_on = self._store._call_on
        copy = call_on(server, "gets", key)
        if copy[1] is None or copy == call_on(home, "gets", key):
            return
        call_on(server, "cas", key, b"", copy[1], -1)

    def _change(
        self,
        user_id: str,
        change: Callable[[Entries], bool],
        horizon: float | None = None,
    ) -> None:
        """Apply ``change`` (edits in place, True if it changed anything) to
        the index as it is, raising its horizon to ``horizon`` (an index
        without one, written by an earlier version, keeps none), and write
        it with CAS; again on a conflict."""
        key, call = self.key(user_id), self._store._call
        for attempt in range(1, MAX_ATTEMPTS + 1):
            value, cas = call("gets", key)
            entries, kept = parse_index(value)
            if kept is None and entries:  # earlier version: no bound known
                raised = None
            else:
                raised = max(kept or 0.0, horizon or 0.0) or None
            changed = change(entries)
            if not changed and (raised == kept or not entries):  # nothing to raise
                self._remember(user_id, entries, kept)
                return
            ttl = index_ttl(entries, raised)
            if cas is None:
                done = call("add", key, encode(entries, raised), ttl)
            else:
                done = call("cas", key, encode(entries, raised), cas, ttl)
            if done:
                self._remember(user_id, entries, raised)
                return
            pause(attempt)
        raise self._contention(f"the user index {key}")

    def _contention(self, what: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"too much contention on {what}: "
            f"{MAX_ATTEMPTS} conflicting writes in a row",
            store=repr(self._store),
        )

    def records(self, user_id: str) -> dict[str, Record]:
        """Record name -> live record of the user's sessions; prunes dead entries.

        One ``get`` of the index and one per record, again if a record was
        missing (see ``_userentries``)."""
        key, held = self.key(user_id), set[str]()
        live, entries = read_live(
            lambda: parse(self._store._call("get", key)),
            lambda names: self._live_records(names, held),
        )
        stale = stale_entries(entries, held)
        if stale:
            self._change(user_id, lambda entries: _drop(entries, stale))
        return live

    def _live_records(self, names: list[str], held: set[str]) -> dict[str, Record]:
        """The live records of ``names``; adds to ``held`` every name whose
        item memcached still holds (live or not, by this host's clock)."""
        live: dict[str, Record] = {}
        for name in names:
            record, cas = self._store._fetch(self._prefix + name)
            if cas is not None:
                held.add(name)
            if record is not None and record[1] > now():
                live[name] = Record(record[0], record[1], cas)
        return live

    def create(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """Prune, write the pending entry, create the record, confirm the entry."""
        store = self._store
        name = store._name(session_key)[len(self._prefix) :]
        # A listed record on a server that is down must not refuse a login
        # whose index and record live elsewhere, nor hold it for the server's
        # timeout at every login while it stalls: it is pruned next time.
        if not store._any_server_down():
            with suppress(StoreUnavailable):
                self.records(user_id)
        pending = max(1, int(now() * 1000))
        added: list[bool] = []

        def add(entries: Entries) -> bool:
            added[:] = [name not in entries]
            entries[name] = pending
            return True

        self._add_entry(user_id, name, add, horizon_for(expires_at))
        if store.create(session_key, payload, expires_at) is None:
            if added[0]:  # ours, and no record will come: take it back
                self._change(user_id, lambda entries: _drop(entries, {name: pending}))
            return None
        self._change(user_id, lambda entries: _confirm(entries, name))
        return session_key

    def _add_entry(
        self, user_id: str, name: str, add: Callable[[Entries], bool], horizon: float
    ) -> None:
        """``_change(user_id, add, horizon)``, making room first while
        memcached refuses the index as over its item size."""
        for _ in range(MAX_ATTEMPTS):
            try:
                self._change(user_id, add, horizon)
                return
            except StoreUnavailable as exc:
                if not _too_large(exc) or not self._make_room(user_id, name):
                    raise
        raise self._contention(f"the user index {self.key(user_id)}")

    def _make_room(self, user_id: str, name: str) -> bool:
        """End the user's sessions that expire soonest, enough of them for
        the pending entry of ``name``; False if the index lists none. The
        session moving to ``name`` (a login of a bound session) is spared."""
        live = self.records(user_id)
        live.pop(MOVING_FROM.get() or "", None)
        room, ended = len(name) + len(str(int(now() * 1000))) + 2, set()
        for old in sorted(live, key=lambda old: live[old].expires_at):
            if room <= 0:
                break
            self.delete_record(old)
            ended.add(old)
            room -= len(old) + 3  # its line, "<name> 0\n"
        if not ended:
            return False
        self._change(user_id, lambda entries: _forget(entries, ended))
        self._warn_full(
            "the user index %s reached memcached's item size: ended the %d "
            "session(s) of the user that expire soonest to make room for a login",
            self.key(user_id),
            len(ended),
        )
        return True

    def delete_record(self, record_name: str) -> bool:
        """Delete the record; whether a live one was there.

        A ``cas`` to an item that expires at once, so that of two deleters
        (a revocation and a ``cycle_key()``) only one is told it deleted
        the record. Its index entry goes at the next pruning."""
        name = self._prefix + record_name
        for attempt in range(1, MAX_ATTEMPTS + 1):
            record, cas = self._store._fetch(name)
            if cas is None:
                return False
            if self._store._call("cas", name, b"", cas, -1):
                return record is not None and record[1] > now()
            pause(attempt)
        raise self._contention(f"session record {name}")


def _drop(entries: Entries, stale: Entries) -> bool:
    """Remove the entries of ``stale`` whose score is still the one read."""
    gone = [name for name, score in stale.items() if entries.get(name) == score]
    for name in gone:
        del entries[name]
    return bool(gone)


def _too_large(exc: StoreUnavailable) -> bool:
    """Whether memcached refused a value as over its item size (``-I``)."""
    return "too large" in str(exc.__cause__)


def _forget(entries: Entries, names: set[str]) -> bool:
    """Remove the entries of ``names``, whatever their score."""
    gone = [name for name in names if name in entries]
    for name in gone:
        del entries[name]
    return bool(gone)


def _confirm(entries: Entries, name: str) -> bool:
    """Mark ``name``'s record as created (its entry is written again if a
    listing pruned it meanwhile: the record exists now)."""
    if entries.get(name) == 0:
        return False
    entries[name] = 0
    return True
