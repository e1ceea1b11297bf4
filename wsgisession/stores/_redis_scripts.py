"""The Lua scripts of RedisStore, named by their SHA-1 as ``EVALSHA`` wants."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["COMPARE_AND_SET", "RELEASE", "Lua"]


class Lua(NamedTuple):
    """A Lua script and its SHA-1, as ``EVALSHA`` names it."""

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Lua:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


# KEYS[1]: the record. ARGV[1]: the value the caller read, byte for byte
# (a plain comparison: hashing it cost the server more than the compare),
# or "" if it read nothing: a stored value is never empty (its header alone
# is 9 bytes), so an absent record reads as "". ARGV[2]: the new value.
# ARGV[3]: its TTL in ms, or "0" to delete the record. Returns 1 when
# written, else the current value (nil if there is none) for the caller to
# merge with.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return current end
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

COMPARE_AND_SET = Lua.of(_COMPARE_AND_SET)
RELEASE = Lua.of(_RELEASE)
