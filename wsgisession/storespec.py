"""Which store an ini file names, with which keys, and building it.

The keys themselves are declared by the stores (``ini_name`` and
``ini_options`` in each store's module, listed by
:mod:`wsgisession.stores.registry`); this module checks a set of them
against those declarations and calls the store's ``from_ini``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from . import _coerce as c
from ._coerce import import_dotted
from .errors import ConfigError
from .redaction import redact_url, redacted_value
from .stores import registry
from .stores.base import IniOption, Store

__all__ = [
    "STORE_KEY",
    "StoreSpec",
    "refuse_relative_paths",
    "sqlite_database",
    "store_keys",
]

#: The ``store`` key itself: a built-in name or ``package.module:Class``.
STORE_KEY = IniOption(
    "store", "store name or package.module:Class", "sqlite",
    "A built-in store's name (each key below says which stores take it), "
    "or a Store subclass to import and call with the store keys that are set.",
    lambda key, value: store_name(key, value), c.parse_text,
)  # fmt: skip


def store_name(key: str, value: Any) -> str:
    """Check a ``store`` value: a built-in store's name or an import path."""
    names = list(registry.builtin_stores())
    if isinstance(value, str):
        if value.lower() in names:
            return value.lower()
        if c.DOTTED.fullmatch(value):
            return value
    expected = f"one of {', '.join(names)} or 'package.module:Class'"
    if isinstance(value, str) and "://" in value:  # a server's URL, maybe a password
        where = key.removesuffix("store")  # the prefix: "wsgisession." in Pyramid
        raise ConfigError(
            f"invalid value for {key!r}: {redact_url(value.strip())!r}; expected "
            f"{expected}; the server's URL goes in {where}redis_url or {where}sql_url"
        )
    raise c.invalid(key, value, expected)


def custom_options(store: str) -> dict[str, IniOption]:
    """The ini keys a third-party ``package.module:Class`` declares, if importable."""
    if store in registry.builtin_stores():
        return {}
    try:
        target = import_dotted(store)
    except ConfigError:
        return {}  # reported when the store is built
    declared = getattr(target, "ini_options", ())
    return {option.name: option for option in declared}


def store_keys(store: str = "") -> dict[str, IniOption]:
    """Every store key an ini file may set (with ``store``, those of that store)."""
    return {
        "store": STORE_KEY,
        **registry.ini_options(),
        **(custom_options(store) if store else {}),
    }


class StoreSpec:
    """Which store to build and with what: the store keys of an ini file.

    ``StoreSpec(store="redis", redis_url="redis://...")``: each key is
    checked here, against the declaration of the store that takes it;
    ``prefix`` is how the keys were spelled (``"wsgisession."``), for
    errors. A custom ``package.module:Class`` is called with the store keys
    that were set, as keyword arguments (none at all if only ``store`` was
    set), and must return a :class:`~wsgisession.stores.base.Store`.
    """

    def __init__(self, store: str = "sqlite", *, prefix: str = "", **keys: Any) -> None:
        self.store = store_name(prefix + "store", store)
        known = store_keys(self.store)
        self._values: dict[str, Any] = {}
        for name, value in keys.items():
            option = known.get(name)
            if option is None or name == "store":
                raise c.unknown_key(prefix + name, name, prefix, known)
            self._values[name] = option.check(prefix + name, value)

    def __getattr__(self, name: str) -> Any:
        option = store_keys(self.__dict__.get("store", "")).get(name)
        if option is None or name.startswith("_"):
            raise AttributeError(name)
        return self._values.get(name, option.default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoreSpec):
            return NotImplemented
        return (self.store, self.given()) == (other.store, other.given())

    __hash__ = None  # type: ignore[assignment]

    def replace(self, **keys: Any) -> StoreSpec:
        """A copy with ``keys`` changed (checked again)."""
        return StoreSpec(self.store, **{**self._values, **keys})

    def given(self) -> dict[str, Any]:
        """The store keys set to other than their default (``store`` excluded)."""
        known = store_keys(self.store)
        return {
            name: value
            for name, value in self._values.items()
            if value != known[name].default
        }

    def check(self, prefix: str = "") -> None:
        """ConfigError if a key the store needs is missing or a key does not apply."""
        target = registry.builtin_stores().get(self.store)
        if target is None:
            return  # a custom store takes what it declares, or any key
        given = self.given()
        for option in target.ini_options:
            if option.required and option.name not in given:
                raise ConfigError(
                    f"{prefix}store = {self.store} needs {prefix}{option.name} "
                    f"({option.help})"
                )
        taken = {option.name for option in target.ini_options}
        for name in given:
            if name not in taken:
                takers = " or ".join(sorted(registry.stores_taking(name)))
                raise ConfigError(
                    f"{prefix}{name} does not apply to {prefix}store = {self.store}; "
                    f"it is for {prefix}store = {takers}"
                )

    def build(self, prefix: str = "") -> Store:
        """Construct the store; ConfigError for missing, misplaced or bad keys.

        An error from the store's constructor is reported with the keys
        that were given to it, so that the message points into the ini file.
        """
        self.check(prefix)
        try:
            return self._construct()
        except ConfigError as exc:
            keys = ", ".join(f"{prefix}{name}" for name in self.given())
            raise ConfigError(
                f"{prefix}store = {self.store}"
                + (f" ({keys})" if keys else "")
                + f": {exc}"
            ) from exc

    def _construct(self) -> Store:
        target = registry.builtin_stores().get(self.store)
        if target is not None:
            return target.from_ini(self.given())
        return self._build_custom()

    def _build_custom(self) -> Store:
        factory = import_dotted(self.store, key="store")
        # Every key that was set, also one set to its default value: the
        # class's own defaults may differ from the built-in stores'.
        kwargs = dict(self._values)
        if not callable(factory):
            raise ConfigError(f"store: {self.store!r} is not a class or callable")
        declared = isinstance(factory, type) and issubclass(factory, Store)
        try:
            if declared and factory.ini_options:
                result = factory.from_ini(kwargs)
            else:
                result = factory(**kwargs)
        except (TypeError, KeyError) as exc:
            raise ConfigError(
                f"store: {self.store!r} cannot be called with {sorted(kwargs)}: {exc}"
            ) from exc
        if not isinstance(result, Store):
            raise ConfigError(
                f"store: {self.store!r} returned {result!r}, not a "
                "wsgisession.stores.base.Store"
            )
        return result

    def __repr__(self) -> str:
        shown = {
            name: redacted_value(name, value) for name, value in self.given().items()
        }
        parts = [f"store={self.store!r}"] + [f"{k}={v!r}" for k, v in shown.items()]
        return f"StoreSpec({', '.join(parts)})"


def spec_from_values(values: Mapping[str, Any], prefix: str = "") -> StoreSpec:
    """A checked StoreSpec from parsed values (``store`` among them, or the default)."""
    keys = dict(values)
    store = keys.pop("store", STORE_KEY.default)
    spec = StoreSpec(store, prefix=prefix, **keys)
    spec.check(prefix)
    return spec


def refuse_relative_paths(values: Mapping[str, Any], paths: Collection[str]) -> None:
    """ConfigError for a relative store path in a Paste Deploy section (one
    read with its ``here``): the app, ``wsgisession check`` and a cron job's
    ``clear-expired`` would each resolve it from their own working directory,
    and use different stores without a word. ``paths`` are the keys that
    hold a path; an SQLite ``sql_url`` holds one too."""
    for name, value in values.items():
        if name in paths and isinstance(value, str) and not os.path.isabs(value):
            raise ConfigError(
                f"{name} = {value} is a relative path, which each process "
                "resolves from its own working directory; write an absolute "
                f"path, such as %(here)s/{value} for one beside the ini file"
            )
        relative = sqlite_database(value) if name == "sql_url" else None
        if relative and not _absolute_or_uri(relative):
            raise ConfigError(
                f"sql_url names the SQLite file {relative} by a relative path, "
                "which each process resolves from its own working directory; "
                f"write an absolute one, such as sqlite:///%(here)s/{relative}"
            )


def sqlite_database(url: object) -> str | None:
    """The database file of an SQLite ``sql_url`` as SQLAlchemy reads it
    (``sqlite:///var/s.db`` is ``var/s.db``; ``""`` for one in memory);
    None for another database, or without SQLAlchemy (building the store
    names it)."""
    if not isinstance(url, str):
        return None
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
    except ImportError:
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # the store's build reports it
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    return "" if database in (None, ":memory:") else database


def _absolute_or_uri(name: str) -> bool:
    """Whether an SQLite file name is absolute, or a ``file:`` URI (which
    names its file in its own syntax)."""
    return os.path.isabs(name) or name.lower().startswith("file:")
