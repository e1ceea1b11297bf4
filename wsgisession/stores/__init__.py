"""Session stores. Each is one module behind the protocol in :mod:`.base`.

The memcached, Redis and SQL stores import their client library only when they
are constructed, so this package imports without the optional extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Record, Store
from .memory import MemoryStore
from .registry import BUILTIN_STORES, builtin_class

if TYPE_CHECKING:
    from .cookie import SignedCookieStore
    from .file import FileStore
    from .memcached import MemcachedStore
    from .redis import RedisStore
    from .sql import SQLStore
    from .sqlite import SQLiteStore

__all__ = [
    "FileStore",
    "MemcachedStore",
    "MemoryStore",
    "Record",
    "RedisStore",
    "SQLStore",
    "SQLiteStore",
    "SignedCookieStore",
    "Store",
]

# Out of a type checker's sight: a module ``__getattr__`` would make it take
# any name of this package for one (``from wsgisession.stores import
# CookieStore`` passing as ``Any``); it sees the imports above instead.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name not in BUILTIN_STORES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return builtin_class(name)
