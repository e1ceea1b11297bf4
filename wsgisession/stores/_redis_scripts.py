"""The Lua scripts of RedisStore, named by their SHA-1 as ``EVALSHA`` wants."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["Lua"]


class Lua(NamedTuple):
    """A Lua script and its SHA-1, as ``EVALSHA`` names it."""

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Lua:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())
