"""How a MemcachedStore's items look to memcached: their names' limits and
their expiry times, which memcached counts in whole seconds on a clock of
its own (the record's header keeps the real expiry)."""

from __future__ import annotations

import math

from ..errors import ConfigError
from ._shared import LOCK_SUFFIX

__all__ = [
    "CLOCK_MARGIN",
    "MAX_KEY_LENGTH",
    "NEVER",
    "RELATIVE_EXPIRE_LIMIT",
    "USER_SUFFIX",
    "check_key_prefix",
    "memcached_expire",
]

#: The suffix of user index items (records are ``key_prefix`` + 64 hex digits).
USER_SUFFIX = ":user"
#: Longest key memcached accepts.
MAX_KEY_LENGTH = 250
#: memcached reads an expiry time above this many seconds as a Unix time.
RELATIVE_EXPIRE_LIMIT = 30 * 24 * 3600
#: memcached keeps expiry times in 32 bits: its last absolute time (January 2038).
_MAX_EXPIRE = 2**31 - 1
#: The expiry time memcached reads as "never expire".
NEVER = 0

#: Seconds memcached keeps an item beyond its header's ``expires_at``: its
#: clock counts whole seconds and lags real time by up to one, so an exact
#: TTL could end a record (or a lock) early. The header is the only judge.
CLOCK_MARGIN = 2
_DIGEST_LENGTH = 64  # hex SHA-256 from storage_key()


def memcached_expire(expires_at: float, moment: float) -> int | None:
    """The memcached expiry time for ``expires_at`` seen at ``moment``.

    Seconds remaining, rounded up, plus :data:`CLOCK_MARGIN`; beyond 30 days
    the absolute Unix time (plus the margin), since memcached reads larger
    numbers that way; past memcached's last absolute time, :data:`NEVER`
    (the header still ends the record: capped, memcached dropped it in 2038).
    None when the record is already expired: memcached's 0 would mean
    "never expire".
    """
    remaining = expires_at - moment
    if not remaining > 0:  # also catches NaN
        return None
    if remaining + CLOCK_MARGIN > RELATIVE_EXPIRE_LIMIT:
        absolute = expires_at + CLOCK_MARGIN
        return math.ceil(absolute) if absolute <= _MAX_EXPIRE else NEVER
    return math.ceil(remaining) + CLOCK_MARGIN


def check_key_prefix(key_prefix: str) -> None:
    """ConfigError unless ``key_prefix`` leaves room for every item's name."""
    if not isinstance(key_prefix, str) or not all(
        "!" <= char <= "~" for char in key_prefix
    ):
        raise ConfigError(
            f"memcached key_prefix must be printable ASCII without spaces: "
            f"{key_prefix!r}"
        )
    longest = MAX_KEY_LENGTH - _DIGEST_LENGTH - max(len(LOCK_SUFFIX), len(USER_SUFFIX))
    if len(key_prefix) > longest:
        raise ConfigError(
            f"memcached key_prefix is too long ({len(key_prefix)} characters; "
            f"at most {longest})"
        )
