"""The names and TTLs of RedisStore's keys: a record's lock in its slot, and
the PX a record or a lock is given."""

from __future__ import annotations

import math

from ..expiry import MAX_SECONDS

__all__ = ["record_ttl_ms", "slot_mate", "ttl_ms"]

#: Longest TTL handed to Redis: past the 100 years ``set_expiry()`` takes (a
#: record is never dropped before its expiry); the header keeps the real expiry.
_MAX_TTL_MS = 2 * MAX_SECONDS * 1000
#: Redis counts a record's PX from its clock's whole millisecond, up to 1 ms
#: before the moment the store read: one more keeps it to its expiry.
_CLOCK_TICK_MS = 1


def slot_mate(name: str, suffix: str, prefix: str = "") -> str:
    """The name of a key that belongs to record ``name`` (its lock, say):
    in a Redis Cluster it hashes to the record's slot, so both live on the
    same node. It starts with ``prefix`` (the store's key_prefix), so that
    an ACL granting the app ``~<key_prefix>*`` covers it too. The record's
    name itself never changes."""
    start = name.find("{")
    end = name.find("}", start + 1) if start != -1 else -1
    if end > start + 1:  # the record already has a hash tag: it places both
        return name + suffix
    if "}" in name:  # cannot be quoted as a tag (a key_prefix with a stray brace)
        return name + suffix
    if "{" in prefix:  # a lone brace before the tag would open it instead
        return "{" + name + "}" + suffix
    return prefix + "{" + name + "}" + suffix


def ttl_ms(expires_at: float, moment: float) -> int:
    """Milliseconds from ``moment`` to ``expires_at``, rounded up; 0 if past."""
    remaining = expires_at - moment
    if not remaining > 0:  # also catches NaN
        return 0
    return math.ceil(min(remaining * 1000, _MAX_TTL_MS))


def record_ttl_ms(expires_at: float, moment: float) -> int:
    """The PX of a record expiring at ``expires_at``: Redis drops it no
    sooner, though its clock truncates to whole milliseconds; 0 if past."""
    ttl = ttl_ms(expires_at, moment)
    return ttl + _CLOCK_TICK_MS if ttl else 0
