"""RedisStore: sessions in Redis, saved by a compare-and-set script.

Each record is one string under ``key_prefix + storage_key(id)``, written
with a millisecond TTL. Its value is a 9-byte header (a format byte,
``expires_at`` as a double) and the payload, so that load checks expiry
itself whatever the clocks say. A request that loads and saves costs two
round trips: ``GET`` at load, one ``EVALSHA`` at save. The script writes only
if the record is still the one the request read (compared byte for byte) and
otherwise returns the current value, which the store merges and tries again:
concurrent requests never lose each other's changes. The opt-in request
lock is a key set with ``SET NX PX`` next to the record.

In a Redis Cluster every key of one session lives on the record's node: the
lock's name carries the record's name as its hash tag, after the key
prefix (``wsgisession:{wsgisession:<digest>}:lock``: an ACL on the prefix
covers it), and the record's own name is unchanged,
so records written by earlier versions stay readable. Scripts run with
``EVALSHA`` on the key's node and fall back to ``EVAL`` there when that node
has not cached them (a restarted or new node), never through a ``SCRIPT
LOAD`` sent to every master, which fails while one of them is down.
"""

from __future__ import annotations

import logging
import secrets
import threading
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

try:
    import redis
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError

    from ._redis_clients import (
        check_bytes_client,
        client_from_url,
        follow_asks_to_new_masters,
        let_go,
    )
    from ._redis_pool import reclaim
except ImportError as exc:  # pragma: no cover - depends on the environment
    # Raised on construction: the module still imports, so that the ini
    # schema, the CLI and the docs know this store without the extra.
    _MISSING_CLIENT: ImportError | None = exc
else:
    _MISSING_CLIENT = None

from .. import _coerce as c
from ..errors import ConfigError, LockTimeout, StoreUnavailable
from ..logthrottle import ThrottledWarning
from ..redaction import redact_url
from ._keptlocks import KeptTokens
from ._lockwaits import wait_for_lock
from ._redis_names import record_ttl_ms, slot_mate, ttl_ms
from ._redis_scripts import COMPARE_AND_SET, RELEASE, Lua
from ._redis_sweep import IndexSweep
from ._redis_users import RedisUserIndex
from ._shared import (
    DEFAULT_KEY_PREFIX,
    KEY_PREFIX_OPTION,
    LOCK_SUFFIX,
    check_timeout,
    pack,
    pause,
    per_process,
    unpack,
)
from .base import IniOption, Merge, Progress, Store, new_record, now, storage_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from redis.cluster import RedisCluster

    from .base import Record

    RedisClient = redis.Redis | RedisCluster

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50


class RedisStore(Store):
    """Sessions in Redis, from a ``url`` or a ready ``client``.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL, or
    ``redis+cluster://host:port`` (``rediss+cluster://``) for a Redis Cluster found
    through one of its nodes; ``client`` is any redis-py client that returns bytes
    (a Sentinel master, a ``RedisCluster``), also accepted in the place of ``url``.
    Nothing connects until first use; a server that cannot be reached raises
    ``StoreUnavailable`` (in a cluster: only for the sessions whose slots it
    serves), and the connection pool reconnects by itself once it is back.
    ``close()`` closes the connections of a client the store made from ``url``; a
    ``client`` passed in is the caller's to close.
    """

    ini_name = "redis"
    ini_options = (
        IniOption(
            "redis_url", "redis:// URL", None,
            "URL of the Redis server (redis://, rediss:// or unix://), or "
            "redis+cluster://host:port,host:port (one or more of its nodes) for a "
            "Redis Cluster. Redis Sentinel has no URL: set store to a function of "
            "yours that returns the store (see the stores docs).",
            c.redis_url, c.parse_optional_text, required=True, argument="url",
        ),
        KEY_PREFIX_OPTION,
    )  # fmt: skip

    def __init__(
        self,
        url: str | RedisClient | None = None,
        *,
        client: RedisClient | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = 2.0,
    ) -> None:
        if _MISSING_CLIENT is not None:
            raise ImportError(
                "RedisStore needs redis-py: pip install 'wsgisession[redis]'"
            ) from _MISSING_CLIENT
        if isinstance(url, (redis.Redis, redis.RedisCluster)):  # in url's place
            if client is not None:
                raise ConfigError("RedisStore needs exactly one of url and client")
            url, client = None, url
        if (url is None) == (client is None):
            raise ConfigError("RedisStore needs exactly one of url and client")
        if not isinstance(key_prefix, str):
            raise ConfigError(f"RedisStore key_prefix must be a str: {key_prefix!r}")
        timeout = check_timeout("RedisStore socket_timeout", socket_timeout)
        self._key_prefix = key_prefix
        self._warn_damaged = ThrottledWarning(logger)  # a client resends its cookie
        self._users = RedisUserIndex(self, key_prefix)
        self._index_sweep = IndexSweep(self, self._users, key_prefix)
        self._connect: Callable[[], Any] | None = None
        self._owns_client = url is not None
        self._connecting: dict[int, threading.Lock] = {}  # see per_process()
        self._unreleased = KeptTokens[str]()  # locks left behind: _take_lock
        if url is not None:
            self._where = redact_url(url) if isinstance(url, str) else "?"
            made = client_from_url(url, timeout)
            if isinstance(made, redis.Redis):
                self._client: Any = made
            else:  # a cluster, built on first use
                self._client, self._connect = None, made
        else:
            self._where = f"<{type(client).__name__}>"
            self._client = client
            check_bytes_client(client)
            follow_asks_to_new_masters(client)

    def _name(self, session_key: str) -> str:
        return self._key_prefix + storage_key(session_key)

    def _is_cluster(self) -> bool:
        client = self._client if self._client is not None else self._connected()
        return hasattr(client, "mget_nonatomic")

    def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Run the client's ``command``; Redis failures become ``StoreUnavailable``."""
        try:
            client = self._client if self._client is not None else self._connected()
            return getattr(client, command)(*args, **kwargs)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} failed: {type(exc).__name__}: {exc}",
                store=repr(self),
            ) from exc
        except BaseException:
            # An interrupt (a signal's, a timeout's) between redis-py's
            # steps may have left a connection out of its pool: put back,
            # once more if a second one lands before reclaim() moved it.
            try:
                reclaim(self._client)
            except BaseException:
                reclaim(self._client)
                raise
            raise

    def _connected(self) -> Any:
        """The cluster client, built by the first call that needs it."""
        with per_process(self._connecting, threading.Lock):
            if self._client is None:
                assert self._connect is not None
                self._client = self._connect()
            return self._client

    def _script(self, lua: Lua, name: str, *args: Any) -> Any:
        """Run ``lua`` on the node of key ``name``: ``EVALSHA``, or ``EVAL``
        there when that node has not cached the script (which caches it)."""
        try:
            return self._call("evalsha", lua.sha, 1, name, *args)
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
        return self._call("eval", lua.source, 1, name, *args)

    def _decode(self, name: str, value: bytes | None) -> tuple[bytes, float] | None:
        """The live record in ``value``, or None if absent, expired or corrupt."""
        if value is None:
            return None
        record = unpack(value)
        if record is None:
            self._warn_damaged("%r: ignoring a corrupt record under %s", self, name)
            return None
        return record if record[1] > now() else None

    def load(self, session_key: str) -> Record | None:
        name = self._name(session_key)
        try:
            value = self._call("get", name)
        except StoreUnavailable as exc:
            if not str(exc.__cause__).startswith("WRONGTYPE"):
                raise
            value = b""  # a key of another type: a corrupt record, as _decode logs
        record = self._decode(name, value)
        if record is None:
            return None
        return new_record((*record, value))

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = self._name(session_key)
        ttl = record_ttl_ms(expires_at, now())
        if not ttl:
            # Born expired: nothing to store, but a live record still wins.
            return None if self.load(session_key) is not None else session_key
        value = pack(payload, expires_at)
        if self._call("set", name, value, nx=True, px=ttl):
            return session_key
        return session_key if self._take_dead(name, value, ttl) else None

    def _take_dead(self, name: str, value: bytes, ttl: int) -> bool:
        """Write ``value`` over dead record ``name`` (expired by its header, not
        by Redis; corrupt; gone since): False if live, foreign or changed."""
        try:
            seen = self._call("get", name)
        except StoreUnavailable as exc:
            if str(exc.__cause__).startswith("WRONGTYPE"):
                return False  # not a record of ours: never written over
            raise
        if seen is not None and self._decode(name, seen) is not None:
            return False
        result = self._script(COMPARE_AND_SET, name, seen or b"", value, ttl)
        if result is None and seen is not None:  # Redis ended it: absent now, ""
            result = self._script(COMPARE_AND_SET, name, b"", value, ttl)
        return isinstance(result, int)

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        name = self._name(session_key)
        if _trusted(loaded):
            assert loaded is not None
            current: bytes | None = loaded.payload
            seen: bytes | None = loaded.version
        else:  # nothing loaded, or a copy that has expired since: read it now
            seen = self._call("get", name)
            current = self._payload(name, seen)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            payload, expires_at = merge(current)
            ttl = record_ttl_ms(expires_at, now())
            new = pack(payload, expires_at) if ttl else b""
            result = self._script(COMPARE_AND_SET, name, seen or b"", new, ttl)
            if isinstance(result, int):
                return session_key
            if attempt > 1:  # busy: back off, then read what is there by then
                pause(attempt)
                result = self._call("get", name)
            current, seen = self._payload(name, result), result
        raise StoreUnavailable(
            f"too much contention on session record {name}: "
            f"{MAX_ATTEMPTS} conflicting writes in a row",
            store=repr(self),
        )

    def _payload(self, name: str, value: bytes | None) -> bytes | None:
        record = self._decode(name, value)
        return None if record is None else record[0]

    def delete(self, session_key: str) -> None:
        name = self._name(session_key)
        self._call("delete", name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Prune every user index (a full ``SCAN`` of each master; one that
        is down raises StoreUnavailable) and return 0: Redis expires records
        by itself, and pruned index entries are not records."""
        for key in self._index_sweep.full_pass():
            self._users.prune(key)
        return 0

    def sweep_expired(self, limit: int) -> int:
        """Prune the next user indexes (see ``_redis_sweep``): Redis expires
        records itself, but not the index of a user who never comes back.
        Returns how many stale index entries went; a master that is down is
        skipped, and an index with a record on it waits for the next pass."""
        return self._index_sweep.sweep(limit)

    # -- a user's sessions: see _redis_users -----------------------------

    supports_user_sessions = True

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        return self._users.create(user_id, session_key, payload, expires_at)

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        return self._users.records(user_id)

    def delete_record(self, record_name: str) -> bool:
        return self._users.delete_record(record_name)

    @contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold a key set with ``SET NX PX`` in the record's slot.

        The key expires after ``ttl`` if the holder dies; release deletes it
        only if it still holds this holder's random token.
        """
        name = slot_mate(self._name(session_key), LOCK_SUFFIX, self._key_prefix)
        token = secrets.token_hex(16)
        px = max(1, ttl_ms(ttl, 0.0))
        try:
            wait_for_lock(
                lambda: self._take_lock(name, token, px), timeout, (id(self), name)
            )
        except LockTimeout:
            raise
        except BaseException:
            # A SET whose reply was lost or late, or that an interrupt (a
            # timeout around the request, a signal) cut short, may have run
            # (or will, after a stall): its key must not lock the session for
            # ttl. One EVAL, which a stalled server runs after the SET even
            # if this too gets no reply in time (an EVALSHA could meet an
            # empty cache).
            with suppress(StoreUnavailable):
                self._call("eval", RELEASE.source, 1, name, token)
            raise
        try:
            yield
        finally:
            try:
                self._script(RELEASE, name, token)
            except StoreUnavailable:  # the key expires anyway; keep the real error
                logger.warning("%r: could not release the lock %s", self, name)
                self._unreleased.keep(name, token, now() + ttl)
            except BaseException:
                # Cut short by an interrupt (a timeout around the request, a
                # signal): once more, or the key would lock the session for ttl.
                with suppress(StoreUnavailable):
                    self._call("eval", RELEASE.source, 1, name, token)
                raise

    def _take_lock(self, name: str, token: str, px: int) -> bool:
        """``SET NX PX`` of lock ``name``. One this store could not release
        (its master died; the replica that took over has the key) is
        released by its token first: it would lock the session for lock_ttl."""
        if self._call("set", name, token, nx=True, px=px):
            return True
        left = self._unreleased.of(name)
        if not left:
            return False
        for token_left in left:  # failing: kept for the next taking
            self._script(RELEASE, name, token_left)
        self._unreleased.forget(name, left)  # not those kept meanwhile
        return bool(self._call("set", name, token, nx=True, px=px))

    def close(self) -> None:
        """Close the connections of the client this store made from its url;
        a client passed in is left open. The store reconnects if used again."""
        if self._owns_client and self._client is not None:
            # Not Redis.close(): it cuts the commands in flight short.
            manager = getattr(self._client, "nodes_manager", None)
            if manager is None:
                let_go(self._client.connection_pool)
            else:  # RedisCluster.close() leaves its nodes' pools connected
                self._client.close()
                nodes = [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
                for node in nodes:
                    if node.redis_connection is not None:
                        let_go(node.redis_connection.connection_pool)
        if self._connect is not None:  # a cluster is mapped again if used again
            self._client = None

    def __repr__(self) -> str:
        return f"RedisStore({self._where}, key_prefix={self._key_prefix!r})"


def _trusted(loaded: Record | None) -> bool:
    """Whether ``update`` may compare against the loaded copy without a re-read:
    it carries the stored value and has not expired since (an expired copy is
    never written back)."""
    return (
        loaded is not None
        and isinstance(loaded.version, bytes)
        and loaded.expires_at > now()
    )
