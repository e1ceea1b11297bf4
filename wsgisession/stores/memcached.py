"""MemcachedStore: sessions in memcached, saved with a compare-and-swap loop.

Each record is one item under ``key_prefix + storage_key(id)``. Its value is
a 9-byte header (a format byte, ``expires_at`` as a double) and the payload.
The header alone decides whether a record is live: load and save check it
against the clock, to the microsecond. memcached's own TTL is only there to
reclaim the memory, and is set :data:`CLOCK_MARGIN` seconds beyond the
header's time, because memcached counts whole seconds on a clock that lags
real time by up to one: an exact TTL would end sessions up to a second
early. A request that loads and saves costs two round trips, ``gets`` at
load and ``cas`` at save (a new session: one ``add``); a conflicting save
reads again and merges, so concurrent requests never lose each other's
changes, and a loaded copy that has expired since is never written back.
The opt-in request lock is an item next to the record (``:lock``), kept on
the record's server and judged by its own header like a record.

With several servers a key goes to one of them by rendezvous hashing (as
pymemcache's ``HashClient`` places it), but a failing server raises
:class:`~wsgisession.errors.StoreUnavailable` for the sessions it holds
instead of being dropped from the ring, which would silently move them to
another server. New sessions are placed on the servers that are up.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

try:
    from pymemcache.client.rendezvous import (  # type: ignore[import-untyped]
        RendezvousHash,
    )
    from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]

    from ._memcached_servers import Server, server_specs
except ImportError as exc:  # pragma: no cover - depends on the environment
    # Raised on construction: the module still imports, so that the ini
    # schema, the CLI and the docs know this store without the extra.
    _MISSING_CLIENT: ImportError | None = exc
else:
    _MISSING_CLIENT = None

from .. import _coerce as c
from ..errors import LockTimeout, StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._memcached_items import (
    CLOCK_MARGIN,
    check_key_prefix,
    memcached_expire,
)
from ._memcached_users import MemcachedUserIndex
from ._memcached_usersessions import MemcachedUserSessions
from ._shared import (
    DEFAULT_KEY_PREFIX,
    KEY_PREFIX_OPTION,
    LOCK_SUFFIX,
    check_timeout,
    pack,
    pause,
    poll_lock,
    unpack,
)
from .base import IniOption, Merge, Progress, Store, new_record, now, storage_key

if TYPE_CHECKING:
    from .base import Record

__all__ = ["MemcachedStore", "memcached_expire"]

logger = logging.getLogger(__name__)

#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50
#: How many fresh ids ``generate_key`` draws to place a session on a live server.
_PLACEMENT_TRIES = 16
#: Locks whose release failed kept for their next taker (see ``_take_lock``).
_UNRELEASED_KEPT = 10_000
#: Tokens kept per lock: the lock's, and those of the takings that failed
#: after it while its server stalled (one of them may be the lock's).
_TOKENS_KEPT = 8


class MemcachedStore(MemcachedUserSessions, Store):
    """Sessions in one or more memcached servers, written with CAS.

    ``servers`` is a list of ``"host:port"`` (or ``"unix:/path"``) strings,
    or one whitespace-separated string. Nothing connects until first use;
    a server that cannot be reached raises ``StoreUnavailable`` within
    ``connect_timeout`` (or ``timeout`` for a stalled one) for the sessions
    it holds, new sessions go to the other servers meanwhile, and the store
    reconnects by itself once the server is back. ``close()`` closes the
    pooled connections.
    """

    ini_name = "memcached"
    ini_options = (
        IniOption(
            "memcached_servers", "list of host:port", (),
            "The memcached servers, whitespace-separated.",
            c.word_list, c.parse_list, required=True, argument="servers",
        ),
        KEY_PREFIX_OPTION,
    )  # fmt: skip

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        if _MISSING_CLIENT is not None:
            raise ImportError(
                "MemcachedStore needs pymemcache: pip install 'wsgisession[memcached]'"
            ) from _MISSING_CLIENT
        check_key_prefix(key_prefix)
        connect = check_timeout("MemcachedStore connect_timeout", connect_timeout)
        io = check_timeout("MemcachedStore timeout", timeout)
        self._specs = server_specs(servers)
        self._key_prefix = key_prefix
        self._warn_damaged = ThrottledWarning(logger)  # a client resends its cookie
        self._warn_unreleased = ThrottledWarning(logger)  # each request of a stall
        self._unreleased: dict[str, tuple[bytes, ...]] = {}  # see _take_lock
        self._servers = [Server(spec, connect, io) for spec in self._specs]
        self._by_node = {server.node: server for server in self._servers}
        self._single = self._servers[0] if len(self._servers) == 1 else None
        self._users = MemcachedUserIndex(self, key_prefix)
        self._ring = RendezvousHash()
        for server in self._servers:
            self._ring.add_node(server.node)

    def _name(self, session_key: str) -> str:
        return self._key_prefix + storage_key(session_key)

    def _server_for(self, name: str) -> Server:
        if self._single is not None:
            return self._single
        return self._by_node[self._ring.get_node(name)]

    def _call(self, command: str, name: str, *args: Any) -> Any:
        """Run a pymemcache ``command`` on ``name``, on the server that holds
        it; failures become ``StoreUnavailable``. Writes wait for the reply."""
        server = self._single or self._by_node[self._ring.get_node(name)]
        try:
            return server.run(command, name, *args)
        except (MemcacheError, OSError) as exc:
            raise self._unavailable(server, exc) from exc

    def _call_beside(self, record: str, command: str, name: str, *args: Any) -> Any:
        """:meth:`_call` for an item kept on the server of ``record`` (its lock)."""
        return self._call_on(self._server_for(record), command, name, *args)

    def _call_on(self, server: Server, command: str, name: str, *args: Any) -> Any:
        """:meth:`_call` on ``server``, wherever ``name`` lives."""
        try:
            return server.run(command, name, *args)
        except (MemcacheError, OSError) as exc:
            raise self._unavailable(server, exc) from exc

    def _unavailable(self, server: Server, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"memcached server {server.spec} failed: {type(exc).__name__}: {exc}",
            store=repr(self),
        )

    def _any_server_down(self) -> bool:
        """Whether a server failed to answer in the last few seconds."""
        return any(server.down for server in self._servers)

    def generate_key(self) -> str:
        """A fresh id, on a server that is up if one of them is down: new
        sessions avoid a dead server, existing ones never move."""
        key = super().generate_key()
        if not self._any_server_down():
            return key
        for _ in range(_PLACEMENT_TRIES):
            if not self._server_for(self._name(key)).down:
                break
            key = super().generate_key()
        return key

    def _fetch(self, name: str) -> tuple[tuple[bytes, float] | None, bytes | None]:
        """The record under ``name`` (None if absent or corrupt) and its CAS token
        (None only if absent)."""
        value, cas = self._call("gets", name)
        if value is None:
            return None, None
        record = unpack(value)
        if record is None:
            self._warn_damaged("%r: ignoring a corrupt record under %s", self, name)
        return record, cas

    def _read(self, name: str) -> tuple[bytes | None, bytes | None]:
        """The live payload under ``name`` (None if absent, expired or corrupt)
        and its CAS token, for a write that must replace whatever is there."""
        record, cas = self._fetch(name)
        if record is None or record[1] <= now():
            return None, cas
        return record[0], cas

    def load(self, session_key: str) -> Record | None:
        record, cas = self._fetch(self._name(session_key))
        if record is None or record[1] <= now():
            return None
        return new_record((*record, cas))

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        """One ``add``; None if the key is live, or if its server is down while
        another is up (the session then asks :meth:`generate_key` again)."""
        name = self._name(session_key)
        expire = memcached_expire(expires_at, now())
        if expire is None:
            # Born expired: nothing to store, but a live record still wins.
            return None if self.load(session_key) is not None else session_key
        try:
            if self._call("add", name, pack(payload, expires_at), expire):
                return session_key
        except StoreUnavailable:
            if self._server_for(name).down and not all(
                server.down for server in self._servers
            ):
                return None
            raise
        # The item exists; it is only taken if it is live. A dead one (expired
        # by its header but not yet by memcached, or corrupt) is replaced.
        current, cas = self._read(name)
        if current is not None or cas is None:
            return None
        return session_key if self._write(name, payload, expires_at, cas) else None

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        name = self._name(session_key)
        current: bytes | None
        cas: bytes | None
        if (
            loaded is not None
            and isinstance(loaded.version, bytes)
            and loaded.expires_at > now()
        ):
            current, cas = loaded.payload, loaded.version
        else:  # nothing loaded, or a copy that has expired since: read it now
            current, cas = self._read(name)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            payload, expires_at = merge(current)
            if self._write(name, payload, expires_at, cas):
                return session_key
            pause(attempt)
            current, cas = self._read(name)
        raise StoreUnavailable(
            f"too much contention on session record {name}: "
            f"{MAX_ATTEMPTS} conflicting writes in a row",
            store=repr(self),
        )

    def _write(
        self, name: str, payload: bytes, expires_at: float, cas: bytes | None
    ) -> bool:
        """Write if the item is still at ``cas`` (absent if None); False on conflict.

        An already-past ``expires_at`` deletes the item instead, by a ``cas``
        to an item that expires at once: a write that came after the read
        is merged, not deleted unseen.
        """
        expire = memcached_expire(expires_at, now())
        if expire is None:
            if cas is None:
                self._call("delete", name)
                return True
            return bool(self._call("cas", name, b"", cas, -1))
        value = pack(payload, expires_at)
        if cas is None:
            return bool(self._call("add", name, value, expire))
        return bool(self._call("cas", name, value, cas, expire))

    def delete(self, session_key: str) -> None:
        name = self._name(session_key)
        self._call("delete", name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """memcached expires records by itself: nothing to do."""
        return 0

    @contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold an item added under the record's name plus ``:lock``, on the
        record's own server.

        The item carries its ``expires_at`` like a record and is taken over
        once that has passed, so a holder that dies loses the lock after
        exactly ``ttl``; memcached reclaims the item a little later.
        """
        record = self._name(session_key)
        name, token = record + LOCK_SUFFIX, secrets.token_hex(16).encode()
        try:
            poll_lock(lambda: self._take_lock(record, name, token, ttl), timeout)
        except LockTimeout:
            raise
        except StoreUnavailable:
            # A take whose reply was lost or late may have stored the item (a
            # stalled server runs it when it wakes): released at the next
            # taking, not now, when the server would keep this request waiting
            # for another timeout.
            self._keep_unreleased(name, token)
            raise
        except BaseException:
            # Cut short by an interrupt (a timeout around the request, a
            # signal): the item may be stored, and would lock the session.
            with suppress(StoreUnavailable):
                self._release(record, name, token)
            raise
        try:
            yield
        finally:
            try:
                self._unlock(record, name, token)
            except BaseException:
                # Cut short by an interrupt (a timeout around the request, a
                # signal): once more, or the item would lock the session for ttl.
                with suppress(StoreUnavailable):
                    self._release(record, name, token)
                raise

    def _take_lock(self, record: str, name: str, token: bytes, ttl: float) -> bool:
        moment = now()
        value = pack(token, moment + ttl)
        expire = memcached_expire(moment + ttl, moment)
        if expire is None:  # a ttl too short to move the clock
            expire = CLOCK_MARGIN
        if self._call_beside(record, "add", name, value, expire):
            self._unreleased.pop(name, None)
            return True
        held, cas = self._call_beside(record, "gets", name)
        if held is None:  # released meanwhile: the next poll adds it
            return False
        holder = unpack(held)
        if holder is not None and holder[0] == token:
            return True  # ours: an add run again after its reply was lost
        # One this store could not release (its server stalled, or the reply
        # was lost) would lock the session for ttl: taken over.
        left = self._unreleased.get(name, ())
        if holder is not None and holder[1] > now() and holder[0] not in left:
            self._unreleased.pop(name, None)  # a live holder's: none of ours
            return False
        # The holder's time is up (or the item is not ours): take it over.
        if not self._call_beside(record, "cas", name, value, cas, expire):
            return False
        self._unreleased.pop(name, None)
        return True

    def _unlock(self, record: str, name: str, token: bytes) -> None:
        """Remove the lock item if it is still ours; failures are only logged
        (they must not mask the request's error), and the lock is released
        at this store's next taking of it."""
        try:
            self._release(record, name, token)
        except StoreUnavailable:
            self._warn_unreleased("%r: could not release the lock %s", self, name)
            self._keep_unreleased(name, token)

    def _keep_unreleased(self, name: str, token: bytes) -> None:
        """Remember ``token`` as a lock ``name`` this store may still hold,
        beside the last few kept for it: a taking that failed while an
        earlier lock of the session was still unreleased is not that lock."""
        kept = self._unreleased.get(name)
        if kept is not None or len(self._unreleased) < _UNRELEASED_KEPT:
            self._unreleased[name] = (*(kept or ()), token)[-_TOKENS_KEPT:]

    def _release(self, record: str, name: str, token: bytes) -> None:
        held, cas = self._call_beside(record, "gets", name)
        holder = unpack(held)
        if holder is not None and holder[0] == token:  # unless taken over
            self._call_beside(record, "cas", name, b"", cas, -1)

    def close(self) -> None:
        """Close the pooled connections, and those in use as their commands
        end; the store reconnects if used again."""
        for server in self._servers:
            server.close()

    def __repr__(self) -> str:
        return (
            f"MemcachedStore(servers={self._specs!r}, key_prefix={self._key_prefix!r})"
        )
