"""RedisStore: sessions in Redis, saved by a compare-and-set script.

Each record is one string under ``key_prefix + storage_key(id)``, written
with a millisecond TTL. Its value is a 9-byte header (a format byte,
``expires_at`` as a double) and the payload, so that load checks expiry
itself whatever the clocks say. A request that loads and saves costs two
round trips: ``GET`` at load, one ``EVALSHA`` at save. The script writes only
if the record is still the one the request read (compared by SHA-1) and
otherwise returns the current value, which the store merges and tries again:
concurrent requests never lose each other's changes. The opt-in request
lock is a key set with ``SET NX PX`` next to the record (``:lock``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the environment
    # Raised on construction: the module still imports, so that the ini
    # schema, the CLI and the docs know this store without the extra.
    _MISSING_CLIENT: ImportError | None = exc
else:
    _MISSING_CLIENT = None

from .. import _coerce as c
from ..errors import ConfigError, StoreUnavailable
from ..redaction import redact_url
from ._shared import KEY_PREFIX_OPTION, LOCK_SUFFIX, pack, pause, poll_lock, unpack
from .base import IniOption, Merge, Progress, Record, Store, now, storage_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TypeVar

    from redis.cluster import RedisCluster

    T = TypeVar("T")
    RedisClient = redis.Redis | RedisCluster

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

#: How many conflicting writes ``update`` tolerates before giving up.
MAX_ATTEMPTS = 50
#: Longest TTL handed to Redis (100 years); the header keeps the real expiry.
_MAX_TTL_MS = 100 * 365 * 24 * 3600 * 1000
_SCHEMES = ("redis", "rediss", "unix")
_DB_PATH = re.compile(r"(/[0-9]*)?")  # redis-py ignores any other path


# KEYS[1]: the record. ARGV[1]: SHA-1 (hex) of the value the caller read, or
# "" if it read nothing. ARGV[2]: the new value. ARGV[3]: its TTL in ms, or
# "0" to delete the record. Returns 1 when written, else the current value
# (nil if there is none) for the caller to merge with.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
local seen = ''
if current then seen = redis.sha1hex(current) end
if seen ~= ARGV[1] then return current end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

# KEYS[1]: a lock. ARGV[1]: its holder's token. Deletes it only if still held.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def ttl_ms(expires_at: float, moment: float) -> int:
    """Milliseconds from ``moment`` to ``expires_at``, rounded up; 0 if past."""
    remaining = expires_at - moment
    if not remaining > 0:  # also catches NaN
        return 0
    return math.ceil(min(remaining * 1000, _MAX_TTL_MS))


def _digest(value: bytes | None) -> str:
    return "" if value is None else hashlib.sha1(value).hexdigest()


def _client_from_url(url: str, socket_timeout: float) -> redis.Redis:
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
        raise ConfigError(
            f"RedisStore url must start with redis://, rediss:// or unix://: "
            f"{redact_url(url) if isinstance(url, str) else type(url).__name__}"
        )
    parts = urlsplit(url)
    if parts.scheme != "unix" and not _DB_PATH.fullmatch(parts.path):
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: the path must be a "
            "database number, as in redis://host:6379/0"
        )
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # One attempt per command: a failed write is not blindly replayed,
            # and an outage is reported at once. The pool still replaces
            # connections that a restarted server closed before using them.
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise ConfigError(f"invalid RedisStore url {redact_url(url)}: {exc}") from exc


class RedisStore(Store):
    """Sessions in Redis, from a ``url`` or a ready ``client``.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL; ``client``
    is any redis-py client that returns bytes (a Sentinel master, a
    ``RedisCluster``). Nothing connects until first use; a server that
    cannot be reached raises ``StoreUnavailable``, and the connection pool
    reconnects by itself once it is back.
    """

    ini_name = "redis"
    ini_options = (
        IniOption(
            "redis_url", "redis:// URL", None,
            "URL of the Redis server (redis://, rediss:// or unix://).",
            c.redis_url, c.parse_optional_text, required=True, argument="url",
        ),
        KEY_PREFIX_OPTION,
    )  # fmt: skip

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisClient | None = None,
        key_prefix: str = "wsgisession:",
        socket_timeout: float = 2.0,
    ) -> None:
        if _MISSING_CLIENT is not None:
            raise ImportError(
                "RedisStore needs redis-py: pip install 'wsgisession[redis]'"
            ) from _MISSING_CLIENT
        if (url is None) == (client is None):
            raise ConfigError("RedisStore needs exactly one of url and client")
        if not isinstance(key_prefix, str):
            raise ConfigError(f"RedisStore key_prefix must be a str: {key_prefix!r}")
        if (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, (int, float))
            or not socket_timeout > 0
        ):
            raise ConfigError(
                f"RedisStore socket_timeout must be a positive number: "
                f"{socket_timeout!r}"
            )
        self._key_prefix = key_prefix
        if url is not None:
            self._where = redact_url(url) if isinstance(url, str) else "?"
            self._client: Any = _client_from_url(url, float(socket_timeout))
        else:
            self._where = f"<{type(client).__name__}>"
            self._client = client
            _check_bytes_client(client)
        self._compare_and_set = self._client.register_script(_COMPARE_AND_SET)
        self._release = self._client.register_script(_RELEASE)

    def _name(self, session_key: str) -> str:
        return self._key_prefix + storage_key(session_key)

    def _call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``operation``; Redis failures become ``StoreUnavailable``."""
        try:
            return operation(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} failed: {type(exc).__name__}: {exc}",
                store=repr(self),
            ) from exc

    def _decode(self, name: str, value: bytes | None) -> tuple[bytes, float] | None:
        """The live record in ``value``, or None if absent, expired or corrupt."""
        if value is None:
            return None
        record = unpack(value)
        if record is None:
            logger.warning("%r: ignoring a corrupt record under %s", self, name)
            return None
        return record if record[1] > now() else None

    def load(self, session_key: str) -> Record | None:
        name = self._name(session_key)
        value = self._call(self._client.get, name)
        record = self._decode(name, value)
        if record is None:
            return None
        return Record(record[0], record[1], _digest(value))

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = self._name(session_key)
        ttl = ttl_ms(expires_at, now())
        if not ttl:
            # Born expired: nothing to store, but a live record still wins.
            return None if self.load(session_key) is not None else session_key
        value = pack(payload, expires_at)
        created = self._call(self._client.set, name, value, nx=True, px=ttl)
        return session_key if created else None

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        name = self._name(session_key)
        if loaded is not None and isinstance(loaded.version, str):
            current: bytes | None = loaded.payload
            seen: str = loaded.version
        else:
            value = self._call(self._client.get, name)
            current, seen = self._payload(name, value), _digest(value)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            payload, expires_at = merge(current)
            ttl = ttl_ms(expires_at, now())
            new = pack(payload, expires_at) if ttl else b""
            result = self._call(
                self._compare_and_set, keys=[name], args=[seen, new, ttl]
            )
            if isinstance(result, int):
                return session_key
            if attempt > 1:  # busy: back off, then read what is there by then
                pause(attempt)
                result = self._call(self._client.get, name)
            current, seen = self._payload(name, result), _digest(result)
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
        self._call(self._client.delete, name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Redis expires records by itself: nothing to do."""
        return 0

    @contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold a key set with ``SET NX PX`` next to the record.

        The key expires after ``ttl`` if the holder dies; release deletes it
        only if it still holds this holder's random token.
        """
        name = self._name(session_key) + LOCK_SUFFIX
        token = secrets.token_hex(16)
        px = max(1, ttl_ms(ttl, 0.0))
        poll_lock(
            lambda: bool(self._call(self._client.set, name, token, nx=True, px=px)),
            timeout,
        )
        try:
            yield
        finally:
            try:
                self._call(self._release, keys=[name], args=[token])
            except StoreUnavailable:  # the key expires anyway; keep the real error
                logger.warning("%r: could not release the lock %s", self, name)

    def __repr__(self) -> str:
        return f"RedisStore({self._where}, key_prefix={self._key_prefix!r})"


def _check_bytes_client(client: Any) -> None:
    """Refuse a client that decodes replies to str: records are bytes."""
    get_encoder = getattr(client, "get_encoder", None)
    encoder = get_encoder() if callable(get_encoder) else None
    if getattr(encoder, "decode_responses", False):
        raise ConfigError(
            "RedisStore needs a client with decode_responses=False: "
            "session records are bytes"
        )
