"""Which stores an ini file can name, and the keys they take.

Each store declares its own ``ini_name`` and ``ini_options`` (see
:class:`~wsgisession.stores.base.Store`); this module only lists where the
built-in ones live, and imports them when a name is first looked up, so
that importing :mod:`wsgisession.stores` stays cheap. A third-party store
is named by its import path, ``package.module:Class``.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .base import IniOption, Store

__all__ = [
    "BUILTIN_STORES",
    "builtin_stores",
    "ini_options",
    "stores_taking",
]

#: Class name -> module of every built-in store, in the order the docs list them.
#: A new built-in store adds its line here (``"ExampleStore": ".example"``).
BUILTIN_STORES = {
    "MemoryStore": ".memory",
    "FileStore": ".file",
    "SQLiteStore": ".sqlite",
    "MemcachedStore": ".memcached",
    "RedisStore": ".redis",
    "SQLStore": ".sql",
    "SignedCookieStore": ".cookie",
}


def builtin_class(class_name: str) -> Any:
    """Import a built-in store class by its name (``"RedisStore"``)."""
    module = importlib.import_module(BUILTIN_STORES[class_name], __package__)
    return getattr(module, class_name)


@functools.cache
def builtin_stores() -> dict[str, type[Store]]:
    """Ini name -> class of every built-in store (imports their modules once)."""
    classes = (builtin_class(name) for name in BUILTIN_STORES)
    return {cls.ini_name: cls for cls in classes}


@functools.cache
def ini_options() -> dict[str, IniOption]:
    """Every ini key of the built-in stores (a key shared by two stores once)."""
    options: dict[str, IniOption] = {}
    for cls in builtin_stores().values():
        for option in cls.ini_options:
            options.setdefault(option.name, option)
    return options


def stores_taking(key: str) -> list[str]:
    """The ini names of the built-in stores that take ``key``."""
    return [
        name
        for name, cls in builtin_stores().items()
        if any(option.name == key for option in cls.ini_options)
    ]
