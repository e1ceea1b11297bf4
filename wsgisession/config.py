"""The one configuration schema: every option's type, default and help, once.

Each middleware option is a field of :class:`Settings`, whose metadata
says how to check a Python value and how to parse an ini string; the store
keys are declared by the stores themselves (``ini_options``, gathered by
:class:`~wsgisession.storespec.StoreSpec`). Keyword validation, ini and
Pyramid settings parsing (:func:`parse_settings`) and the option reference
in the docs (:func:`describe_options`) are all derived from those.

Parsing is strict on purpose, unlike Beaker: booleans are what Paste
Deploy's ``asbool`` accepts (true/false, yes/no, on/off, y/n, t/f, 1/0,
in any case) and nothing else, numbers are plain digits, ``none``
is the one spelling of "no value", and an unknown key is an error with a
"did you mean" hint, raised at startup rather than on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any, Literal, NamedTuple, TypedDict

from . import _beaker
from . import _coerce as c
from . import _cookie_attributes as attributes
from ._coerce import import_dotted
from ._redis_sessions_keys import refuse_redis_sessions_keys
from .errors import ConfigError
from .serializers import Serializer
from .stores import registry
from .stores.base import IniOption
from .storespec import (
    STORE_KEY,
    StoreSpec,
    custom_options,
    refuse_relative_paths,
    spec_from_values,
    store_keys,
)

__all__ = [
    "OptionInfo",
    "Options",
    "Settings",
    "StoreSpec",
    "describe_options",
    "import_dotted",
    "parse_settings",
]

logger = logging.getLogger(__name__)

#: Keys that Paste Deploy itself puts in a section or its globals.
PASTE_KEYS = frozenset({"use", "here", "__file__", "filter-with", "next", "require"})


@dataclass(frozen=True)
class Option:
    """One middleware option of the schema: how to check, parse and describe it.

    ``check(key, value)`` validates a Python value and returns it normalized;
    ``parse(key, text)`` turns an ini string into a Python value for ``check``.
    """

    kind: str
    help: str
    check: c.Check
    parse: c.Parse


def _option(default: Any, kind: str, check: c.Check, parse: c.Parse, help: str) -> Any:
    return field(default=default, metadata={"option": Option(kind, help, check, parse)})


def _schema(cls: type) -> dict[str, Option]:
    return {f.name: f.metadata["option"] for f in fields(cls)}


def _validate_fields(obj: Any, prefix: str) -> None:
    """Check and normalize every field of a frozen dataclass in place.

    Errors name the key as the user wrote it: ``prefix`` + field name.
    """
    for name, option in _schema(type(obj)).items():
        value = option.check(prefix + name, getattr(obj, name))
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Settings:
    """The middleware's options, checked and normalized at construction.

    The keyword arguments of ``SessionMiddleware`` and the ini keys of the
    same names; see :func:`describe_options` for the reference. A value is
    checked once, here: ``SessionMiddleware(app, store, settings=...)``
    takes a Settings as it is. ``prefix`` is not an option: it is how
    the keys were spelled where they came from (``"wsgisession."``), for
    error messages.
    """

    cookie_name: str = _option(
        "sessionid", "cookie name", c.cookie_name, c.parse_text,
        "Name of the session cookie.",
    )  # fmt: skip
    cookie_age: int = _option(
        1209600, "seconds (int >= 0)", c.seconds(0), c.parse_int,
        "How long a session lives after its last save, and the cookie's Max-Age "
        "(browsers keep a cookie 400 days at most, whatever its Max-Age).",
    )  # fmt: skip
    cookie_domain: str | None = _option(
        None, "domain or none", attributes.cookie_domain, c.parse_optional_text,
        "Domain attribute of the cookie; none sends a host-only cookie.",
    )  # fmt: skip
    cookie_path: str = _option(
        "/", "path starting with /", attributes.cookie_path, c.parse_text,
        "Path attribute of the cookie, from the site's root: not relative to "
        "SCRIPT_NAME (as Flask's APPLICATION_ROOT).",
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
    serializer: str | Serializer = _option(  # noqa: RUF009 - _option makes a field()
        "json", "json, pickle or package.module:Name", c.serializer,
        c.parse_text,
        "How sessions become bytes: tagged JSON; pickle (server-side stores "
        "only); or an object with dumps() and loads().",
    )  # fmt: skip
    environ_key: str = _option(
        "wsgisession", "text", c.environ_key, c.parse_text,
        "The WSGI environ key under which the app finds the session. "
        "wsgiref.validate reads a key without a dot as a CGI variable, "
        "whose value must be a str: under it, use a dotted key such as "
        "wsgisession.session.",
    )  # fmt: skip
    lock: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Hold an exclusive lock on the session for the whole request, so "
        "that requests of one session run one at a time.",
    )  # fmt: skip
    lock_timeout: float = _option(
        10.0, "seconds (number > 0, up to 100 years)", c.positive_float, c.parse_float,
        "How long a request waits for the session lock before LockTimeout.",
    )  # fmt: skip
    lock_ttl: float = _option(
        60.0, "seconds (number > 0, up to 100 years)", c.positive_float, c.parse_float,
        "How long a holder may keep the session lock: a waiter takes over a "
        "lock held longer (a holder that died or hangs), on every store. "
        "Keep it above your longest request.",
    )  # fmt: skip
    private_responses: bool = _option(
        True, "bool", c.boolean, c.parse_bool,
        "Add Cache-Control: private to a response that sets or deletes the "
        "session cookie and has no Cache-Control of its own, so that no shared "
        "cache keeps it.",
    )  # fmt: skip
    cleanup_interval: int = _option(
        300, "seconds (int >= 0)", c.seconds(0), c.parse_int,
        "At most once per this many seconds per process (every second while "
        "sweeps find some), a save also removes a bounded batch of expired "
        "records (memory, file, SQLite and SQL stores); 0 turns it off.",
    )  # fmt: skip
    reissue_time: int | None = _option(
        None, "seconds (int >= 0) or none", c.seconds(0, optional=True),
        c.parse_optional_int,
        "Re-save (and re-send the cookie of) a session that was used but not "
        "changed at most once per this many seconds, so that it stays alive "
        "(at once if its last save is ahead of the clock); none never does.",
    )  # fmt: skip
    save_on_error: bool = _option(
        False, "bool", c.boolean, c.parse_bool,
        "Save the session also when the app answers with a 5xx status (Pyramid's "
        "set_on_exception); an exception that escapes the app never saves.",
    )  # fmt: skip
    prefix: InitVar[str] = ""

    def __post_init__(self, prefix: str) -> None:
        _validate_fields(self, prefix)
        c.check_cookie_prefix(
            prefix,
            self.cookie_name,
            self.cookie_secure,
            self.cookie_path,
            self.cookie_domain,
        )

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], base: Settings | None = None
    ) -> Settings:
        """Settings from keyword arguments (over ``base``, if given).

        ConfigError for unknown keys and bad values.
        """
        schema = _schema(cls)
        for key in options:
            if key not in schema:
                if key in store_keys():
                    raise ConfigError(
                        f"{key!r} is a store key of ini files; in Python pass a "
                        "store object instead, e.g. store=RedisStore(url)"
                    )
                raise c.unknown_key(key, key, "", schema)
        if base is None:
            return cls(**options)
        return replace(base, **options) if options else base

    def as_options(self) -> dict[str, Any]:
        """The options as keyword arguments for ``SessionMiddleware`` (not copied)."""
        return {name: getattr(self, name) for name in _schema(type(self))}


class Options(TypedDict, total=False):
    """The keyword options of ``SessionMiddleware``, typed for mypy and IDEs.

    The same names and types as the fields of :class:`Settings` (a test
    keeps them in step); see there for what each means.
    """

    cookie_name: str
    cookie_age: int
    cookie_domain: str | None
    cookie_path: str
    cookie_secure: bool | Literal["auto"]
    cookie_httponly: bool
    cookie_samesite: Literal["Lax", "Strict", "None", False]
    cookie_partitioned: bool
    expire_at_browser_close: bool
    save_every_request: bool
    absolute_timeout: int | None
    serializer: str | Serializer
    environ_key: str
    lock: bool
    lock_timeout: float
    lock_ttl: float
    private_responses: bool
    cleanup_interval: int
    reissue_time: int | None
    save_on_error: bool


def _option_name(key: str, prefix: str) -> str | None:
    """The option a settings key names, or None for keys that are not ours."""
    if prefix:
        return key[len(prefix) :] if key.startswith(prefix) else None
    if key in PASTE_KEYS or key.startswith(("set ", "get ")):
        return None
    return key


def _global_keys(options: Mapping[str, Option], store: object) -> set[str]:
    """The keys a Paste global (``[DEFAULT]``) gives wsgisession: the options
    and the keys of the store in use. The app shares ``[DEFAULT]``: a key of
    another store there (its own ``redis_url``, ``secret_key``) is not ours."""
    name = store.strip() if isinstance(store, str) else ""
    builtin = registry.builtin_stores().get(name.lower() or STORE_KEY.default)
    if builtin is None:  # a custom store: the keys it declares, if any
        return {*options, "store", *custom_options(name)}
    return {*options, "store", *(option.name for option in builtin.ini_options)}


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
    option or a key of the store in use flow in as defaults and the rest
    (another store's ``redis_url``, the app's own keys) are ignored. Values that are
    already not strings (Pyramid settings built in Python) are checked as
    Python values.
    """
    options = _schema(Settings)
    given = dict(settings)
    store = given.get(prefix + "store", "")
    schema: dict[str, Option | IniOption] = {
        **options,
        **store_keys(store if isinstance(store, str) else ""),
    }
    values: dict[str, Any] = {}
    globals_ = global_conf or {}
    if not prefix:
        wanted = _global_keys(options, given.get("store", globals_.get("store")))
        given = {key: raw for key, raw in globals_.items() if key in wanted} | given
    _beaker.refuse_beaker_keys([*given, *globals_], prefix, schema)
    refuse_redis_sessions_keys([*given, *globals_], prefix)
    for key, raw in given.items():
        name = _option_name(key, prefix)
        if name is None or (key in globals_ and key not in schema):
            continue
        option = schema.get(name)
        if option is None:
            raise c.unknown_key(key, name, prefix, schema)
        values[name] = option.parse(key, raw) if isinstance(raw, str) else raw
    if not prefix and "here" in globals_:
        paths = {name for name, option in schema.items() if option.check is c.path}
        refuse_relative_paths(values, paths)
    result = Settings(
        **{k: v for k, v in values.items() if k in options}, prefix=prefix
    )
    spec = spec_from_values(
        {k: v for k, v in values.items() if k not in options}, prefix
    )
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
    """Every option, then every store key as the stores declare them, for the docs."""
    rows = [
        OptionInfo(
            f.name, f.metadata["option"].kind, f.default, f.metadata["option"].help
        )
        for f in fields(Settings)
    ]
    for name, key in store_keys().items():
        text = key.help
        takers = registry.stores_taking(name)
        if takers:
            text += f" Store: {', '.join(sorted(takers))}."
        required = [
            store
            for store, cls in registry.builtin_stores().items()
            if any(o.name == name and o.required for o in cls.ini_options)
        ]
        if required:
            text += f" Required by: {', '.join(sorted(required))}."
        rows.append(OptionInfo(name, key.kind, key.default, text))
    return rows
