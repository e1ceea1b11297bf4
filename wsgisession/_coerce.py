"""The checks and parsers that :mod:`wsgisession.config`'s schema is made of.

A check takes ``(key, value)`` with a Python value and returns it
normalized, or raises :class:`ConfigError` naming the key, the value and
what was expected. A parser takes ``(key, text)`` with an ini string and
returns the Python value that the check then sees. Parsers are strict:
they never guess, so a value means one thing whichever key it is given to.
Also here: importing ``package.module:Name`` values, and the "did you
mean" hint for unknown keys.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import _beaker
from ._secret_strength import strong_secret
from ._unit_hint import unit_hint
from .errors import ConfigError
from .expiry import MAX_SECONDS

Check = Callable[[str, Any], Any]
Parse = Callable[[str, str], Any]

#: ``package.module:Name`` with an optionally dotted ``Name``.
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

#: RFC 6265 cookie-name: an RFC 7230 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A host name as DNS has them (labels of 63 characters at most, 253 in
#: all), after an optional leading dot: browsers keep no cookie for another.
_LABEL = r"[A-Za-z0-9_-]{1,63}"
_DOMAIN = re.compile(rf"\.?(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")
_PATH = re.compile(r"/[!-:<-~]*")  # printable ASCII without space or ';'
_PRINTABLE = re.compile(r"[!-~]+")  # printable ASCII without space
_INT = re.compile(r"[+-]?[0-9]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,19})://")
_MAX_DIGITS = len(str(MAX_SECONDS)) + 1
_FLOAT = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?|[+-]?\.[0-9]+")


#: What ``paste.deploy.converters.asbool`` accepts, compared lower-cased.
_TRUE = ("true", "yes", "on", "y", "t", "1")
_FALSE = ("false", "no", "off", "n", "f", "0")
_SAMESITE = ("Lax", "Strict", "None")
_REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
)


def invalid(key: str, value: object, expected: str) -> ConfigError:
    """The ConfigError for a bad value: names the key, value and expectation."""
    return ConfigError(
        f"invalid value for {key!r}: {value!r}; expected {expected}"
        + (f" ({INI_TEXT_HINT})" if _more_than_one_value(value) else "")
    )


#: Why an ini value holds more than was meant: Paste Deploy's ini has no
#: comments after a value, and an indented line continues the line above.
INI_TEXT_HINT = (
    "in an ini file a '#' or ';' after a value is part of the value, not a "
    "comment, and an indented line continues the value above it: put "
    "comments and keys on lines of their own"
)


def _more_than_one_value(value: object) -> bool:
    """Whether an ini text holds a comment after it or a line below it."""
    return isinstance(value, str) and bool(re.search(r"\s[#;]|\n", value))


def has_dumps_loads(obj: object) -> bool:
    """Whether ``obj`` looks like a serializer (callable ``dumps`` and ``loads``)."""
    return callable(getattr(obj, "dumps", None)) and callable(
        getattr(obj, "loads", None)
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- checks of Python values ------------------------------------------------


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(key, value, "True or False")
    return value


def seconds(minimum: int, *, optional: bool = False) -> Check:
    """A check for whole seconds from ``minimum`` (or None if ``optional``)."""
    expected = f"a whole number of seconds from {minimum} to {MAX_SECONDS}"
    if optional:
        expected += ", or None"

    def check(key: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if not _is_int(value) or not minimum <= value <= MAX_SECONDS:
            raise invalid(key, value, expected)
        return int(value)

    return check


def positive_float(key: str, value: Any) -> float:
    """Seconds above 0 and at most :data:`MAX_SECONDS`: a longer wait or
    lock overflows the clocks that time it (``OverflowError`` mid-request)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= MAX_SECONDS  # also refuses inf and NaN
    ):
        raise invalid(key, value, f"a number of seconds > 0 and <= {MAX_SECONDS}")
    return float(value)


def _matching(pattern: re.Pattern[str], expected: str, *, optional: bool) -> Check:
    """A check for a string matching ``pattern`` (or None if ``optional``)."""
    if optional:
        expected += ", or None"

    def check(key: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise invalid(key, value, expected)
        return value

    return check


cookie_name = _matching(
    _TOKEN, "a cookie name: letters, digits and !#$%&'*+-.^_`|~", optional=False
)
cookie_domain = _matching(
    _DOMAIN,
    "a domain name such as example.com (labels of up to 63 characters, 253 in all)",
    optional=True,
)
cookie_path = _matching(
    _PATH, "a path starting with '/' without spaces or ';'", optional=False
)
environ_key = _matching(
    re.compile(r".+", re.DOTALL), "a non-empty string", optional=False
)
key_prefix = _matching(_PRINTABLE, "printable ASCII without spaces", optional=True)


def secret(key: str, value: Any) -> str | bytes | None:
    """A secret key of at least 32 bytes, or None; errors never show it."""
    if value is not None:
        strong_secret(key, value)
    return value  # type: ignore[no-any-return]


def secret_list(key: str, value: Any) -> tuple[str | bytes, ...]:
    """A list of secret keys of at least 32 bytes each; errors never show them."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(
            f"invalid value for {key!r}: expected a list of secret keys, not a "
            f"{type(value).__name__}"
        )
    for index, item in enumerate(value):
        strong_secret(f"{key}[{index}]", item)
    return tuple(value)


def check_cookie_prefix(
    prefix: str, name: str, secure: object, path: str, domain: str | None
) -> None:
    """ConfigError if ``name`` has a ``__Host-`` or ``__Secure-`` prefix it breaks.

    Browsers refuse such cookies unless they are Secure (and, for
    ``__Host-``, host-only with Path=/); ``auto`` is not enough, since a
    request over http would then get a cookie the browser drops.
    """
    lowered = name.lower()
    host = lowered.startswith("__host-")
    if not host and not lowered.startswith("__secure-"):
        return
    needs = ["cookie_secure = true"] + (
        ["cookie_path = /", "cookie_domain = none"] if host else []
    )
    broken = secure is not True or (host and (path != "/" or domain is not None))
    if broken:
        raise ConfigError(
            f"{prefix}cookie_name = {name}: a cookie named {name[: 7 if host else 9]}... "
            f"needs {', '.join(prefix + need for need in needs)} (browsers drop it "
            "otherwise)"
        )


def secure(key: str, value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    raise invalid(key, value, "True, False or 'auto'")


def samesite(key: str, value: Any) -> Any:
    if value is False:
        return False
    if isinstance(value, str):
        for choice in _SAMESITE:
            if value.lower() == choice.lower():
                return choice
    hint = " (False omits the attribute; 'None' sends SameSite=None)"
    raise invalid(key, value, "'Lax', 'Strict', 'None' or False" + hint)


def path(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise invalid(key, value, "a file system path, or None")
    return value


def redis_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(_REDIS_SCHEMES):
        scheme = _SCHEME.match(value) if isinstance(value, str) else None
        shown = f"scheme {scheme.group(1)!r}" if scheme else "no scheme"
        raise ConfigError(
            f"invalid value for {key!r}: a {type(value).__name__} with {shown} (the "
            "rest is not shown: it may hold a password); expected a URL starting "
            "with redis://, rediss://, unix:// or redis+cluster://"
            + (
                _SENTINEL_HINT
                if scheme and "sentinel" in scheme.group(1).lower()
                else ""
            )
        )
    return value


#: Where a URL for Redis Sentinel, which redis_url has none of, is sent.
_SENTINEL_HINT = (
    "; Redis Sentinel has no URL here: set store = package.module:function, "
    "a function of yours returning RedisStore(client=Sentinel(...).master_for(...)) "
    "(see Sentinel in the stores docs)"
)


def word_list(key: str, value: Any) -> tuple[str, ...]:
    expected = "a list of strings without spaces"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise invalid(key, value, expected + ", not one string")
    for item in value:
        if not isinstance(item, str) or not _PRINTABLE.fullmatch(item):
            raise invalid(key, value, expected)
    return tuple(value)


def import_dotted(path: str, *, key: str = "") -> Any:
    """Import ``"package.module:Name"`` (``Name`` may be dotted); else ConfigError."""
    where = f"{key}: " if key else ""
    if not DOTTED.fullmatch(path):
        raise ConfigError(f"{where}{path!r} is not of the form 'package.module:Name'")
    module_name, _, attribute = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}cannot import {path!r}: {exc}") from exc
    return obj


def serializer(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() in ("json", "pickle"):
            return value.lower()
        if DOTTED.fullmatch(value):
            target = import_dotted(value, key=key)
            if has_dumps_loads(target):
                return value
            raise invalid(key, value, "an importable object with dumps() and loads()")
    elif has_dumps_loads(value):
        return value
    raise invalid(
        key,
        value,
        "'json', 'pickle', 'package.module:Name' or an object with callable "
        "dumps(obj) -> bytes and loads(bytes) -> obj",
    )


def unknown_key(
    key: str, name: str, prefix: str, schema: Mapping[str, Any]
) -> ConfigError:
    """ConfigError for an unknown key, with the nearest valid name as a hint."""
    if (beaker := _beaker.hint(name, prefix)) is not None:
        return ConfigError(f"unknown option {key!r}; {beaker}")
    close = difflib.get_close_matches(name, list(schema), n=1, cutoff=0.6)
    guess = close[0] if close else None
    if guess is not None:
        return ConfigError(f"unknown option {key!r}; did you mean {prefix + guess!r}?")
    names = ", ".join(prefix + known for known in schema)
    return ConfigError(f"unknown option {key!r}; the options are: {names}")


# -- parsers of ini strings -------------------------------------------------


def parse_text(key: str, raw: str) -> str:
    text = raw.strip()
    if not text:
        raise ConfigError(f"empty value for {key!r}")
    return text


def parse_optional_text(key: str, raw: str) -> str | None:
    text = raw.strip()
    if not text:
        raise ConfigError(f"empty value for {key!r}; write 'none' for no value")
    return None if text.lower() == "none" else text


def parse_int(key: str, raw: str) -> int:
    text = raw.strip()
    if not _INT.fullmatch(text):
        expected = "a whole number of seconds written in digits, e.g. 3600"
        raise invalid(key, raw, expected + unit_hint(key, text, whole=True))
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > _MAX_DIGITS:  # int() refuses thousands of digits
        raise invalid(key, f"{text[:12]}...", f"at most {MAX_SECONDS} seconds")
    return int(text)


def parse_optional_int(key: str, raw: str) -> int | None:
    return None if raw.strip().lower() == "none" else parse_int(key, raw)


def parse_float(key: str, raw: str) -> float:
    text = raw.strip()
    if not _FLOAT.fullmatch(text):
        expected = "a number of seconds written in digits, e.g. 2.5"
        raise invalid(key, raw, expected + unit_hint(key, text, whole=False))
    return float(text)


def parse_bool(key: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise invalid(key, raw, "true or false (or yes/no, on/off, y/n, t/f, 1/0)")


def parse_secure(key: str, raw: str) -> bool | str:
    if raw.strip().lower() == "auto":
        return "auto"
    try:
        return parse_bool(key, raw)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or auto, for Secure over https only)") from None


def parse_samesite(key: str, raw: str) -> Any:
    word = raw.strip().lower()
    if word in _FALSE:
        return False
    if word not in ("lax", "strict", "none"):
        raise invalid(
            key, raw, "lax, strict, none (SameSite=None) or false (no attribute)"
        )
    return word


def parse_list(key: str, raw: str) -> tuple[str, ...]:
    return tuple(raw.split())
