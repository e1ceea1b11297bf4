"""MemcachedStore: sessions in memcached, saved with a compare-and-swap loop.

Each record is one item under ``key_prefix + storage_key(id)``. Its value is
a 9-byte header (a format byte, ``expires_at`` as a double) and the payload,
so that load checks expiry itself: memcached's own TTL, rounded up to whole
seconds, only reclaims the memory. A request that loads and saves costs two
round trips, ``gets`` at load and ``cas`` at save; a conflicting save reads
again and merges, so concurrent requests never lose each other's changes.
The opt-in request lock is an item added next to the record (``:lock``).

Connections: per server, a pool of pymemcache clients, each used by one
thread at a time, with TCP_NODELAY and acknowledged writes. With several
servers a key goes to one of them by rendezvous hashing (as pymemcache's
``HashClient`` places it), but a failing server raises
:class:`~wsgisession.errors.StoreUnavailable` instead of being dropped from
the ring, which would silently move its sessions to another server.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import select
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    from pymemcache.client.base import (  # type: ignore[import-untyped]
        Client,
        normalize_server_spec,
    )
    from pymemcache.client.rendezvous import (  # type: ignore[import-untyped]
        RendezvousHash,
    )
    from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]
    from pymemcache.pool import ObjectPool  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    # Raised on construction: the module still imports, so that the ini
    # schema, the CLI and the docs know this store without the extra.
    _MISSING_CLIENT: ImportError | None = exc
else:
    _MISSING_CLIENT = None

from .. import _coerce as c
from ..errors import ConfigError, StoreUnavailable
from ._shared import KEY_PREFIX_OPTION, LOCK_SUFFIX, pack, pause, poll_lock, unpack
from .base import IniOption, Merge, Progress, Record, Store, now, storage_key

__all__ = ["MemcachedStore", "memcached_expire"]

logger = logging.getLogger(__name__)

#: Longest key memcached accepts.
MAX_KEY_LENGTH = 250
#: memcached reads an expiry time above this many seconds as a Unix time.
RELATIVE_EXPIRE_LIMIT = 30 * 24 * 3600
#: memcached keeps expiry times in 32 bits.
_MAX_EXPIRE = 2**31 - 1
#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50


_DIGEST_LENGTH = 64  # hex SHA-256 from storage_key()
# A host name, an IPv4 address, or an IPv6 address (brackets already removed).
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


def memcached_expire(expires_at: float, moment: float) -> int | None:
    """The memcached expiry time for ``expires_at`` seen at ``moment``.

    Seconds remaining, rounded up; beyond 30 days the absolute Unix time,
    since memcached reads larger numbers that way. None when the record is
    already expired: memcached's 0 would mean "never expire".
    """
    remaining = expires_at - moment
    if not remaining > 0:  # also catches NaN
        return None
    if remaining > RELATIVE_EXPIRE_LIMIT:
        return math.ceil(min(expires_at, _MAX_EXPIRE))
    return math.ceil(remaining)


class _BytesSerde:
    """Values travel as the bytes they are: nothing is pickled, flags stay 0."""

    def serialize(self, key: bytes, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: bytes, value: bytes, flags: int) -> bytes:
        return value


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: EOF, i.e. the server left."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready)


class _Server:
    """One memcached server and a pool of clients, each used by one thread at once."""

    def __init__(self, spec: str, connect_timeout: float, timeout: float) -> None:
        self.spec = spec
        try:
            self.address = normalize_server_spec(spec)
        except ValueError as exc:
            raise ConfigError(f"invalid memcached server {spec!r}: {exc}") from exc
        if isinstance(self.address, tuple) and not (
            _HOST.fullmatch(self.address[0]) and 0 < self.address[1] < 65536
        ):
            raise ConfigError(
                f"invalid memcached server {spec!r}: expected host:port, "
                "[ipv6]:port or unix:/path"
            )

        def create() -> Any:
            return Client(
                self.address,
                serde=_BytesSerde(),
                connect_timeout=connect_timeout,
                timeout=timeout,
                no_delay=True,
                default_noreply=False,
            )

        self._create = create
        self._new_pool()

    def _new_pool(self) -> None:
        # Clients connect on first use and reconnect after an error closed them.
        self._pool = ObjectPool(self._create, after_remove=lambda c: c.close())
        self._pid = os.getpid()

    @property
    def node(self) -> str:
        """The name pymemcache's HashClient hashes this server under."""
        if isinstance(self.address, tuple):
            host, port = self.address
            return f"{host}:{port}"
        return str(self.address)

    def run(self, command: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a pymemcache ``command`` with a pooled client; a client that
        failed is dropped, not returned to the pool."""
        if self._pid != os.getpid():
            # A forked child must not talk over its parent's sockets.
            self._new_pool()
        client = self._pool.get()
        try:
            # A restarted server closed our idle connections; reconnect
            # before sending rather than fail the first command after it.
            if client.sock is not None and _readable(client.sock):
                client.close()
            result = getattr(client, command)(name, *args, **kwargs)
        except BaseException:
            self._pool.destroy(client)
            raise
        self._pool.release(client)
        return result


def _server_specs(servers: str | Sequence[str]) -> list[str]:
    specs = servers.split() if isinstance(servers, str) else list(servers)
    if not specs:
        raise ConfigError("MemcachedStore needs at least one server")
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"invalid memcached server {spec!r}")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"memcached servers listed twice: {specs!r}")
    return specs


def _check_key_prefix(key_prefix: str) -> None:
    if not isinstance(key_prefix, str) or not all(
        "!" <= char <= "~" for char in key_prefix
    ):
        raise ConfigError(
            f"memcached key_prefix must be printable ASCII without spaces: "
            f"{key_prefix!r}"
        )
    longest = MAX_KEY_LENGTH - _DIGEST_LENGTH - len(LOCK_SUFFIX)
    if len(key_prefix) > longest:
        raise ConfigError(
            f"memcached key_prefix is too long ({len(key_prefix)} characters; "
            f"at most {longest})"
        )


def _check_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"MemcachedStore {name} must be a positive number: {value!r}")
    return float(value)


class MemcachedStore(Store):
    """Sessions in one or more memcached servers, written with CAS.

    ``servers`` is a list of ``"host:port"`` (or ``"unix:/path"``) strings,
    or one whitespace-separated string. Nothing connects until first use;
    a server that cannot be reached raises ``StoreUnavailable`` within
    ``connect_timeout`` (or ``timeout`` for a stalled one), and the store
    reconnects by itself once the server is back.
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
        key_prefix: str = "wsgisession:",
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        if _MISSING_CLIENT is not None:
            raise ImportError(
                "MemcachedStore needs pymemcache: pip install 'wsgisession[memcached]'"
            ) from _MISSING_CLIENT
        _check_key_prefix(key_prefix)
        connect = _check_timeout("connect_timeout", connect_timeout)
        io = _check_timeout("timeout", timeout)
        self._specs = _server_specs(servers)
        self._key_prefix = key_prefix
        self._servers = [_Server(spec, connect, io) for spec in self._specs]
        self._by_node = {server.node: server for server in self._servers}
        self._ring = RendezvousHash()
        for server in self._servers:
            self._ring.add_node(server.node)

    def _name(self, session_key: str) -> str:
        return self._key_prefix + storage_key(session_key)

    def _server_for(self, name: str) -> _Server:
        if len(self._servers) == 1:
            return self._servers[0]
        return self._by_node[self._ring.get_node(name)]

    def _call(self, command: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a pymemcache ``command`` on ``name``, on the server that holds it;
        failures become ``StoreUnavailable``. Writes wait for the server's reply
        (the clients are made with ``default_noreply=False``)."""
        server = self._server_for(name)
        try:
            return server.run(command, name, *args, **kwargs)
        except (MemcacheError, OSError) as exc:
            raise StoreUnavailable(
                f"memcached server {server.spec} failed: {type(exc).__name__}: {exc}",
                store=repr(self),
            ) from exc

    def _fetch(self, name: str) -> tuple[tuple[bytes, float] | None, bytes | None]:
        """The record under ``name`` (None if absent or corrupt) and its CAS token
        (None only if absent)."""
        value, cas = self._call("gets", name)
        if value is None:
            return None, None
        record = unpack(value)
        if record is None:
            logger.warning("%r: ignoring a corrupt record under %s", self, name)
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
        return Record(record[0], record[1], cas)

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = self._name(session_key)
        if memcached_expire(expires_at, now()) is None:
            # Born expired: nothing to store, but a live record still wins.
            return None if self.load(session_key) is not None else session_key
        if self._write(name, payload, expires_at, None):
            return session_key
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
        if loaded is not None and isinstance(loaded.version, bytes):
            current, cas = loaded.payload, loaded.version
        else:
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

        An already-past ``expires_at`` deletes the item instead.
        """
        expire = memcached_expire(expires_at, now())
        if expire is None:
            self._call("delete", name)
            return True
        value = pack(payload, expires_at)
        if cas is None:
            return bool(self._call("add", name, value, expire=expire))
        return bool(self._call("cas", name, value, cas, expire=expire))

    def delete(self, session_key: str) -> None:
        name = self._name(session_key)
        self._call("delete", name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """memcached expires records by itself: nothing to do."""
        return 0

    @contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold an item added under the record's name plus ``:lock``.

        memcached's ``add`` is atomic across servers and processes; the item
        expires after ``ttl`` (whole seconds, at least one) if the holder dies.
        """
        name = self._name(session_key) + LOCK_SUFFIX
        token = secrets.token_hex(16).encode()
        moment = now()
        expire = memcached_expire(moment + ttl, moment) or 1
        poll_lock(lambda: bool(self._call("add", name, token, expire=expire)), timeout)
        try:
            yield
        finally:
            self._unlock(name, token)

    def _unlock(self, name: str, token: bytes) -> None:
        """Remove the lock item if it is still ours; failures are only logged,
        since the item expires anyway and must not mask the request's error."""
        try:
            value, cas = self._call("gets", name)
            if value == token:  # expire it now, unless someone else took it
                self._call("cas", name, b"", cas, expire=-1)
        except StoreUnavailable:
            logger.warning("%r: could not release the lock %s", self, name)

    def __repr__(self) -> str:
        return (
            f"MemcachedStore(servers={self._specs!r}, key_prefix={self._key_prefix!r})"
        )
