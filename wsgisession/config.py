"""The one configuration schema: every option's type, default and help, once.

Each option is a field of :class:`Settings` (middleware options) or of
:class:`StoreSpec` (store keys), and the field's metadata says how to check
a Python value and how to parse an ini string. Keyword validation, ini and
Pyramid settings parsing (:func:`parse_settings`) and the option reference
in the docs (:func:`describe_options`) are all derived from those fields.

Parsing is strict on purpose, unlike Beaker: booleans are true/false,
yes/no or on/off (never ``1``/``0``), numbers are plain digits, ``none``
is the one spelling of "no value", and an unknown key is an error with a
"did you mean" hint, raised at startup rather than on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from . import _coerce as c
from ._coerce import import_dotted
from .errors import ConfigError

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = [
    "OptionInfo",
    "Settings",
    "StoreSpec",
    "describe_options",
    "import_dotted",
    "parse_settings",
]

logger = logging.getLogger(__name__)

#: Keys that Paste Deploy itself puts in a section or its globals.
PASTE_KEYS = frozenset({"use", "here", "__file__", "filter-with", "require"})


@dataclass(frozen=True)
class Option:
    """One entry of the schema: how to check, parse and describe an option.

    ``check(key, value)`` validates a Python value and returns it normalized;
    ``parse(key, text)`` turns an ini string into a Python value for
    ``check``. ``stores`` (store keys only) lists the stores the key applies
    to, empty meaning all; ``required_by`` the stores that cannot do without.
    """

    kind: str
    help: str
    check: c.Check
    parse: c.Parse
    stores: frozenset[str] = frozenset()
    required_by: frozenset[str] = frozenset()


def _option(
    default: Any,
    kind: str,
    check: c.Check,
    parse: c.Parse,
    help: str,
    *,
    stores: tuple[str, ...] = (),
    required_by: tuple[str, ...] = (),
) -> Any:
    meta = Option(kind, help, check, parse, frozenset(stores), frozenset(required_by))
    return field(default=default, metadata={"option": meta})


def _schema(cls: type) -> dict[str, Option]:
    return {f.name: f.metadata["option"] for f in fields(cls)}


def _validate_fields(obj: Any) -> None:
    """Check and normalize every field of a frozen dataclass in place."""
    for name, option in _schema(type(obj)).items():
        object.__setattr__(obj, name, option.check(name, getattr(obj, name)))


@dataclass(frozen=True)
class Settings:
    """The middleware's options, checked and normalized at construction.

    The keyword arguments of ``SessionMiddleware`` and the ini keys of the
    same names; see :func:`describe_options` for the reference.
    """

    cookie_name: str = _option(
        "sessionid", "cookie name", c.cookie_name, c.parse_text,
        "Name of the session cookie.",
    )  # fmt: skip
    cookie_age: int = _option(
        1209600, "seconds (int >= 0)", c.seconds(0), c.parse_int,
        "How long a session lives after its last save, and the cookie's Max-Age.",
    )  # fmt: skip
    cookie_domain: str | None = _option(
        None, "domain or none", c.cookie_domain, c.parse_optional_text,
        "Domain attribute of the cookie; none sends a host-only cookie.",
    )  # fmt: skip
    cookie_path: str = _option(
        "/", "path starting with /", c.cookie_path, c.parse_text,
        "Path attribute of the cookie.",
    )  # fmt: skip
    cookie_secure: bool | Literal["auto"] = _option(
        False, "true, false or auto", c.secure, c.parse_secure,
        "Secure attribute; auto sets it when the request came over https.",
    )  # fmt: skip
    cookie_httponly: bool = _option(
        True, "bool", c.boolean, c.parse_bool,
        "HttpOnly attribute: keeps the cookie away from JavaScript.",
    )  # fmt: skip
    cookie_samesite: Literal["Lax", "Strict", "None", False] = _option(
        "Lax", "Lax, Strict, None or false", c.samesite, c.parse_samesite,
        "SameSite attribute; None (the attribute value, which forces Secure) "
        "or false to send no SameSite attribute.",
    )  # fmt: skip
    cookie_partitioned: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Partitioned attribute (CHIPS); implies Secure.",
    )  # fmt: skip
    expire_at_browser_close: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Send cookies without Max-Age/Expires, so they end with the browser "
        "session (the server still expires records after cookie_age).",
    )  # fmt: skip
    save_every_request: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Save and re-send the cookie on every request with a non-empty session.",
    )  # fmt: skip
    absolute_timeout: int | None = _option(
        None, "seconds (int > 0) or none", c.seconds(1, optional=True),
        c.parse_optional_int,
        "Seconds after creation when a session dies however active it is; "
        "none for no such limit.",
    )  # fmt: skip
    serializer: Any = _option(  # noqa: RUF009 - _option makes a field()
        "json", "json, pickle or package.module:Name", c.serializer,
        c.parse_text,
        "How sessions become bytes: tagged JSON; pickle (server-side stores "
        "only); or an object with dumps() and loads().",
    )  # fmt: skip
    environ_key: str = _option(
        "wsgisession", "text", c.environ_key, c.parse_text,
        "The WSGI environ key under which the app finds the session.",
    )  # fmt: skip
    lock: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Hold an exclusive lock on the session for the whole request, so "
        "that requests of one session run one at a time.",
    )  # fmt: skip
    lock_timeout: float = _option(
        10.0, "seconds (number >= 0)", c.non_negative_float, c.parse_float,
        "How long a request waits for the session lock before LockTimeout.",
    )  # fmt: skip
    lock_ttl: float = _option(
        60.0, "seconds (number >= 0)", c.non_negative_float, c.parse_float,
        "How long a lock outlives a holder that died without releasing it "
        "(SQLite, memcached, Redis; file locks die with their process). "
        "Keep it above your longest request.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        _validate_fields(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Settings from keyword arguments; ConfigError for unknown keys, bad values."""
        schema = _schema(cls)
        for key in options:
            if key not in schema:
                if key in _schema(StoreSpec):
                    raise ConfigError(
                        f"{key!r} is a store key of ini files; in Python pass a "
                        "store object instead, e.g. store=RedisStore(url)"
                    )
                raise c.unknown_key(key, key, "", schema)
        return cls(**options)

    def as_options(self) -> dict[str, Any]:
        """The options as keyword arguments for ``SessionMiddleware`` (not copied)."""
        return {name: getattr(self, name) for name in _schema(type(self))}


@dataclass(frozen=True)
class StoreSpec:
    """Which store to build and with what: the store keys of an ini file.

    A custom ``package.module:Class`` is called with the store keys that
    were set, as keyword arguments (none at all if only ``store`` was set),
    and must return a :class:`~wsgisession.stores.base.Store`.
    """

    store: str = _option(
        "sqlite", "store name or package.module:Class", c.store_name, c.parse_text,
        "memory, file, sqlite, memcached, redis, cookie, or a Store subclass "
        "to import and call with the store keys that are set.",
    )  # fmt: skip
    file_path: str | None = _option(
        None, "path or none", c.path, c.parse_optional_text,
        "Directory of the file store; none for a private directory under "
        "the system's temporary directory.",
        stores=("file",),
    )  # fmt: skip
    sqlite_path: str | None = _option(
        None, "path or none", c.path, c.parse_optional_text,
        "Database file of the SQLite store; none for a private file under "
        "the system's temporary directory.",
        stores=("sqlite",),
    )  # fmt: skip
    memcached_servers: tuple[str, ...] = _option(
        (), "list of host:port", c.word_list, c.parse_list,
        "The memcached servers, whitespace-separated.",
        stores=("memcached",), required_by=("memcached",),
    )  # fmt: skip
    redis_url: str | None = _option(
        None, "redis:// URL", c.redis_url, c.parse_optional_text,
        "URL of the Redis server (redis://, rediss:// or unix://), or "
        "redis+cluster://host:port for a Redis Cluster.",
        stores=("redis",), required_by=("redis",),
    )  # fmt: skip
    key_prefix: str | None = _option(
        None, "text or none", c.key_prefix, c.parse_optional_text,
        "Prefix of the store's keys; none for the store's default.",
        stores=("memcached", "redis"),
    )  # fmt: skip
    secret_key: str | None = _option(
        None, "text", c.secret, c.parse_optional_text,
        "Key that signs the session cookie. Keep it secret.",
        stores=("cookie",), required_by=("cookie",),
    )  # fmt: skip
    secret_key_fallbacks: tuple[str, ...] = _option(
        (), "list of text", c.word_list, c.parse_list,
        "Older secret keys, whitespace-separated, still accepted when "
        "verifying, so that keys can be rotated.",
        stores=("cookie",),
    )  # fmt: skip
    encrypt: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Encrypt the cookie with AES-GCM (needs the crypto extra); "
        "startup fails without it, never storing plaintext.",
        stores=("cookie",),
    )  # fmt: skip

    def __post_init__(self) -> None:
        _validate_fields(self)

    def given(self) -> dict[str, Any]:
        """The store keys set to other than their default (``store`` excluded)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "store" and getattr(self, f.name) != f.default
        }

    def check(self, prefix: str = "") -> None:
        """ConfigError if a key the store needs is missing or a key does not apply."""
        custom = self.store not in c.BUILTIN_STORES
        schema = _schema(type(self))
        for name, option in schema.items():
            if self.store in option.required_by and name not in self.given():
                raise ConfigError(
                    f"{prefix}store = {self.store} needs {prefix}{name} ({option.help})"
                )
        for name in self.given():
            stores = schema[name].stores
            if not custom and stores and self.store not in stores:
                raise ConfigError(
                    f"{prefix}{name} does not apply to {prefix}store = {self.store}; "
                    f"it is for {prefix}store = {' or '.join(sorted(stores))}"
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
        if self.store not in c.BUILTIN_STORES:
            return self._build_custom()
        from . import stores

        if self.store == "memory":
            return stores.MemoryStore()
        if self.store == "file":
            return stores.FileStore(self.file_path)
        if self.store == "sqlite":
            return stores.SQLiteStore(self.sqlite_path)
        if self.store == "cookie":
            assert self.secret_key is not None  # checked by check()
            return stores.SignedCookieStore(
                self.secret_key, self.secret_key_fallbacks, encrypt=self.encrypt
            )
        if self.store == "memcached":
            servers = list(self.memcached_servers)
            if self.key_prefix is None:
                return stores.MemcachedStore(servers)
            return stores.MemcachedStore(servers, key_prefix=self.key_prefix)
        if self.key_prefix is None:
            return stores.RedisStore(self.redis_url)
        return stores.RedisStore(self.redis_url, key_prefix=self.key_prefix)

    def _build_custom(self) -> Store:
        from .stores.base import Store

        factory = import_dotted(self.store, key="store")
        kwargs = self.given()
        if not callable(factory):
            raise ConfigError(f"store: {self.store!r} is not a class or callable")
        try:
            result = factory(**kwargs)
        except TypeError as exc:
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
            name: "***" if name.startswith("secret_key") else value
            for name, value in self.given().items()
        }
        parts = [f"store={self.store!r}"] + [f"{k}={v!r}" for k, v in shown.items()]
        return f"StoreSpec({', '.join(parts)})"


def _option_name(key: str, prefix: str) -> str | None:
    """The option a settings key names, or None for keys that are not ours."""
    if prefix:
        return key[len(prefix) :] if key.startswith(prefix) else None
    if key in PASTE_KEYS or key.startswith(("set ", "get ")):
        return None
    return key


def parse_settings(
    settings: Mapping[str, Any],
    prefix: str = "",
    *,
    global_conf: Mapping[str, Any] | None = None,
) -> tuple[Settings, StoreSpec]:
    """Settings and store spec from flat string settings (an ini section, Pyramid).

    With a ``prefix`` (``"wsgisession."``) only keys carrying it are read,
    so other settings of the app may share the mapping; without one, Paste
    Deploy's own keys are skipped. Of ``global_conf`` (Paste's ``[DEFAULT]``
    globals, which Paste leaves out of a section), the keys that name an
    option flow in as defaults and the rest are ignored. Values that are
    already not strings (Pyramid settings built in Python) are checked as
    Python values.
    """
    options = _schema(Settings)
    store_keys = _schema(StoreSpec)
    schema = {**options, **store_keys}
    values: dict[str, Any] = {}
    globals_ = global_conf or {}
    given = dict(settings)
    if not prefix:
        given = {key: raw for key, raw in globals_.items() if key in schema} | given
    for key, raw in given.items():
        name = _option_name(key, prefix)
        if name is None or (key in globals_ and key not in schema):
            continue
        option = schema.get(name)
        if option is None:
            raise c.unknown_key(key, name, prefix, schema)
        value = option.parse(key, raw) if isinstance(raw, str) else raw
        values[name] = option.check(key, value)
    result = Settings(**{k: v for k, v in values.items() if k in options})
    spec = StoreSpec(**{k: v for k, v in values.items() if k in store_keys})
    spec.check(prefix)
    if result.serializer == "pickle" and spec.store == "cookie":
        raise ConfigError(
            f"{prefix}serializer = pickle is refused with {prefix}store = cookie: "
            "anyone who obtains the secret key could make the server unpickle "
            "arbitrary objects; use the default json serializer"
        )
    logger.debug("parsed %s and %r", result, spec)
    return result, spec


class OptionInfo(NamedTuple):
    """One row of the option reference: name, type, default and help."""

    name: str
    kind: str
    default: Any
    help: str


def describe_options() -> list[OptionInfo]:
    """Every option and store key, in the schema's order, for the docs."""
    rows = []
    for cls in (Settings, StoreSpec):
        for f in fields(cls):
            option: Option = f.metadata["option"]
            text = option.help
            if option.stores:
                text += f" Store: {', '.join(sorted(option.stores))}."
            if option.required_by:
                text += f" Required by: {', '.join(sorted(option.required_by))}."
            rows.append(OptionInfo(f.name, option.kind, f.default, text))
    return rows
