"""Session stores. Each is one module behind the protocol in :mod:`.base`.

The memcached, Redis and SQL stores import their client library only when they
are constructed, so this package imports without the optional extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Record, Store
from .memory import MemoryStore

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

_LAZY = {
    "FileStore": ".file",
    "SQLiteStore": ".sqlite",
    "MemcachedStore": ".memcached",
    "RedisStore": ".redis",
    "SQLStore": ".sql",
    "SignedCookieStore": ".cookie",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
