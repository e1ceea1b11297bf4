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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

try:
    from pymemcache.client.rendezvous import (  # type: ignore[import-untyped]
        RendezvousHash,
    )
    from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]

    from ._memcached_addresses import server_specs
    from ._memcached_servers import Server
except ImportError as exc:  # pragma: no cover - depends on the environment
    # Raised on construction: the module still imports, so that the ini
    # schema, the CLI and the docs know this store without the extra.
    _MISSING_CLIENT: ImportError | None = exc
else:
    _MISSING_CLIENT = None

from .. import _coerce as c
from ..errors import StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._keptlocks import KeptTokens
from ._memcached_items import (
    CLOCK_MARGIN,
    check_key_prefix,
    memcached_expire,
)
from ._memcached_lock import MemcachedLock
from ._memcached_users import MemcachedUserIndex
from ._memcached_usersessions import MemcachedUserSessions
from ._shared import (
    DEFAULT_KEY_PREFIX,
    KEY_PREFIX_OPTION,
    check_timeout,
    pack,
    pause,
    unpack,
)
from ._writer_turns import WriterTurns
from .base import IniOption, Merge, Progress, Store, new_record, now, storage_key

if TYPE_CHECKING:
    from .base import Record

__all__ = ["CLOCK_MARGIN", "MemcachedStore", "memcached_expire"]

logger = logging.getLogger(__name__)

#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50
#: Seconds a save that conflicted waits for this process's earlier writers
#: of the record (see :mod:`._writer_turns`) before it writes regardless.
TURN_WAIT = 10.0
#: How many fresh ids ``generate_key`` draws to place a session on a live server.
_PLACEMENT_TRIES = 16


class MemcachedStore(MemcachedLock, MemcachedUserSessions, Store):
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
        self._unreleased = KeptTokens[bytes]()  # see _memcached_lock
        self._servers = [Server(spec, connect, io) for spec in self._specs]
        self._by_node = {server.node: server for server in self._servers}
        self._single = self._servers[0] if len(self._servers) == 1 else None
        self._users = MemcachedUserIndex(self, key_prefix)
        self._writer_turns = WriterTurns()
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

    def _fetch(
        self, name: str, run: Callable[..., Any] | None = None
    ) -> tuple[tuple[bytes, float] | None, bytes | None]:
        """The record under ``name`` (None if absent or corrupt) and its CAS token
        (None only if absent); by ``run`` (a held connection's) if given."""
        value, cas = self._call("gets", name) if run is None else run("gets", name)
        if value is None:
            return None, None
        record = unpack(value)
        if record is None:
            self._warn_damaged("%r: ignoring a corrupt record under %s", self, name)
        return record, cas

    def _read(
        self, name: str, run: Callable[..., Any] | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """The live payload under ``name`` (None if absent, expired or corrupt)
        and its CAS token, for a write that must replace whatever is there."""
        record, cas = self._fetch(name, run)
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
        if (
            loaded is not None
            and isinstance(loaded.version, bytes)
            and loaded.expires_at > now()
        ):
            payload, expires_at = merge(loaded.payload)
            if self._write(name, payload, expires_at, loaded.version):
                return session_key
        elif self._merge_on_one_connection(name, merge):  # read now: none loaded
            return session_key
        # A conflict: again, once this process's other writers of it are done.
        with self._writer_turns.taken(name, TURN_WAIT):
            for attempt in range(2, MAX_ATTEMPTS + 1):
                if self._merge_on_one_connection(name, merge):
                    return session_key
                pause(attempt)
        raise StoreUnavailable(
            f"too much contention on session record {name}: "
            f"{MAX_ATTEMPTS} conflicting writes in a row",
            store=repr(self),
        )

    def _merge_on_one_connection(self, name: str, merge: Merge) -> bool:
        """Read ``name``, merge and write it back; False on conflict. The
        ``gets`` and the ``cas`` share one connection, taken once: waiting
        for a connection between them let other requests write meanwhile."""
        server = self._server_for(name)
        try:
            with server.held() as run:
                current, cas = self._read(name, run)
                payload, expires_at = merge(current)
                return self._write(name, payload, expires_at, cas, run)
        except (MemcacheError, OSError) as exc:
            raise self._unavailable(server, exc) from exc

    def _write(
        self,
        name: str,
        payload: bytes,
        expires_at: float,
        cas: bytes | None,
        run: Callable[..., Any] | None = None,
    ) -> bool:
        """Write if the item is still at ``cas`` (absent if None); False on
        conflict. By ``run`` (a held connection's) if given.

        An already-past ``expires_at`` deletes the item instead, by a ``cas``
        to an item that expires at once: a write that came after the read
        is merged, not deleted unseen.
        """
        call = self._call if run is None else run
        expire = memcached_expire(expires_at, now())
        if expire is None:
            if cas is None:
                call("delete", name)
                return True
            return bool(call("cas", name, b"", cas, -1))
        value = pack(payload, expires_at)
        if cas is None:
            return bool(call("add", name, value, expire))
        return bool(call("cas", name, value, cas, expire))

    def delete(self, session_key: str) -> None:
        name = self._name(session_key)
        self._call("delete", name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """memcached expires records by itself: nothing to do."""
        return 0

    def close(self) -> None:
        """Close the pooled connections, and those in use as their commands
        end; the store reconnects if used again."""
        for server in self._servers:
            server.close()

    def __repr__(self) -> str:
        return (
            f"MemcachedStore(servers={self._specs!r}, key_prefix={self._key_prefix!r})"
        )
