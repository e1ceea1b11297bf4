"""Serializers turn the session envelope into bytes and back.

The default, :class:`TaggedJSONSerializer`, is JSON with a small tag scheme
so that the types a web app commonly keeps in a session round-trip:
datetime, date, time, timedelta, UUID, Decimal, bytes, tuple, set, and
markup (objects with ``__html__``, such as ``markupsafe.Markup``); an
aware datetime or time keeps its ``zoneinfo`` zone, any other zone loads
as a fixed offset. Other
subclasses of ``str``, ``int`` and ``float`` (``StrEnum`` and ``IntEnum``
members) are stored as the plain value, as Flask's session does. A value
of any other type, or nested over ``MAX_DEPTH`` (100) levels deep, is
refused at save time, naming its key. Pickle is
available for server-side stores only, and only when asked for by name.

A serializer is any object with ``dumps(obj) -> bytes`` and
``loads(bytes) -> obj``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import pickle
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast
from zoneinfo import ZoneInfo

try:
    from markupsafe import Markup as _Markup
except ImportError:  # optional: markup then loads as HTMLText
    _Markup = None  # type: ignore[assignment,misc]

__all__ = [
    "HTMLText",
    "PickleSerializer",
    "Serializer",
    "TaggedJSONSerializer",
    "resolve_serializer",
]


class Serializer(Protocol):
    """What a serializer must provide.

    The parameters are positional-only: they are only ever passed by
    position, so a serializer may name them as it likes (a type checker
    such as pyright would otherwise refuse ``loads(self, raw)``, and the
    ``pickle`` module, whose ``loads`` takes its data positional-only).
    """

    def dumps(self, obj: Any, /) -> bytes: ...

    def loads(self, data: bytes, /) -> Any: ...


class HTMLText(str):
    """Markup loaded where markupsafe is not installed: text already safe as HTML.

    Its ``__html__`` tells escaping-aware code (markupsafe, Jinja) not to
    escape it again, as the ``Markup`` it was saved from did.
    """

    __slots__ = ()

    def __html__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"HTMLText({str.__repr__(self)})"


#: A ``datetime`` or a ``time``: both are written alike.
Moment = TypeVar("Moment", datetime.datetime, datetime.time)


def _markup(text: str) -> Any:
    return HTMLText(text) if _Markup is None else _Markup(text)


def _encode_datetime(value: datetime.datetime | datetime.time) -> Any:
    """Its ISO text; in a list with its zone's name and its ``fold`` if its
    zone is a ``ZoneInfo``, which the offset alone does not tell apart (the
    next day may have another offset; a ``time`` has none in the text at
    all), or with None and its ``fold`` if it is a naive local time of a
    repeated hour (``fold=1``: the second one)."""
    text = value.isoformat()
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return [text, zone.key, value.fold]
    if zone is None and value.fold:
        return [text, None, value.fold]
    return text


def _decode_datetime(value: Any) -> datetime.datetime:
    return _decode_moment(datetime.datetime, value)


def _decode_time(value: Any) -> datetime.time:
    return _decode_moment(datetime.time, value)


def _decode_moment(kind: type[Moment], value: Any) -> Moment:
    """The ``datetime`` or ``time`` :func:`_encode_datetime` wrote as ``value``."""
    if isinstance(value, str):
        return kind.fromisoformat(value)
    text, key, fold = value
    moment = kind.fromisoformat(text)
    if key is None:  # naive
        return moment.replace(fold=fold)
    try:
        zone = ZoneInfo(key)
    except (KeyError, ValueError):  # a zone this machine lacks: the same
        return moment  # instant (a time: the same local time)
    return moment.replace(tzinfo=zone, fold=fold)


# A tagged value is a one-item dict whose key starts with a space, which no
# ordinary session key is expected to do; a real dict of that shape is
# itself wrapped in the " dict" tag, as a [key, value] pair rather than a
# dict, since JSON decoding sees inner objects before outer ones. Markup
# (" m") is its HTML text; other str, int and float subclasses need no tag:
# they are stored as the plain value, and so load as plain str, int, float.
_ENCODERS: list[tuple[type, str, Callable[[Any], Any]]] = [
    (datetime.datetime, " dt", _encode_datetime),
    (datetime.date, " d", lambda v: v.isoformat()),
    (datetime.time, " t", _encode_datetime),
    (datetime.timedelta, " td", lambda v: [v.days, v.seconds, v.microseconds]),
    (uuid.UUID, " u", lambda v: v.hex),
    (decimal.Decimal, " dec", str),
    (bytes, " b", lambda v: base64.b64encode(v).decode("ascii")),
]


_DECODERS: dict[str, Callable[[Any], Any]] = {
    " dt": _decode_datetime,
    " d": datetime.date.fromisoformat,
    " t": _decode_time,
    " td": lambda v: datetime.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    " u": uuid.UUID,
    " dec": decimal.Decimal,
    " b": base64.b64decode,
    " fset": frozenset,
    " m": _markup,
}

_PLAIN = frozenset((str, int, float, bool, type(None)))
_STR_ONLY = frozenset((str,))

#: The deepest nesting of containers written (the record's own two levels
#: included): a deeper value is refused at save, since the JSON decoder's
#: recursion, in the deeper call stack of the request that loads it, may
#: fail on what the save wrote, and the whole session would load as corrupt.
MAX_DEPTH = 100


def _tag(value: Any, depth: int = 0) -> Any:
    """Return ``value`` rewritten so that plain JSON can carry it."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= MAX_DEPTH:
        raise ValueError(f"values nested over {MAX_DEPTH} levels deep are refused")
    depth += 1
    if kind is dict:
        if not _STR_ONLY.issuperset(map(type, value)):
            _check_keys(value)
        if _PLAIN.issuperset(map(type, value.values())):
            tagged = value  # nothing to rewrite inside: no copy
        else:
            tagged = {
                key: item if type(item) in _PLAIN else _tag(item, depth)
                for key, item in value.items()
            }
        if len(tagged) == 1:
            ((key, item),) = tagged.items()
            if isinstance(key, str) and key.startswith(" "):
                return {" dict": [key, item]}
        return tagged
    if kind is list or kind is tuple:
        if _PLAIN.issuperset(map(type, value)):
            items = value  # nothing to rewrite inside: no copy, no call per item
        else:
            items = [
                item if type(item) in _PLAIN else _tag(item, depth) for item in value
            ]
        return items if kind is list else {" tuple": items}
    if kind is set:
        return {" set": _members(value, depth)}
    if kind is frozenset:  # hashable: it may be inside a set, so it loads as one
        return {" fset": _members(value, depth)}
    if callable(getattr(value, "__html__", None)):
        return {" m": str(value.__html__())}
    for base, tag, encode in _ENCODERS:
        if isinstance(value, base):
            return {tag: encode(value)}
    if isinstance(value, str):  # a StrEnum member...: its plain text
        return str.__str__(value)
    if isinstance(value, (int, float)):  # an IntEnum member...: its number
        return (
            int.__index__(value) if isinstance(value, int) else float.__float__(value)
        )
    raise TypeError(f"values of type {kind.__name__} are not JSON serializable")


def _key_text(key: Any) -> Any:
    """The text JSON writes for the dict key ``key`` (as the encoder does)."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return _ENCODER.encode(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _ENCODER.encode(float.__float__(key))
    return key  # the encoder refuses it (a tuple): nothing to compare


def _check_keys(value: dict[Any, Any]) -> None:
    """ValueError if two keys of ``value`` are written as the same JSON text
    (``1`` and ``"1"``): the record would keep one of the values only."""
    seen: dict[Any, Any] = {}
    for key in value:
        text = _key_text(key)
        other = seen.setdefault(text, key)
        if other is not key:
            raise ValueError(
                f"the keys {other!r} and {key!r} are both written as {str(text)!r}, "
                "so one value would be lost; use str keys"
            )


def _members(value: set[Any] | frozenset[Any], depth: int) -> list[Any]:
    """A set's members, tagged, in an order that depends on them alone: two
    equal sets (one loaded, one grown and shrunk back) have the same JSON,
    which change detection and the merge compare."""
    members = [_tag(item, depth) for item in value]
    if len(members) > 1:
        members.sort(key=_ENCODER.encode)
    return members


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    ((tag, value),) = obj.items()
    if not tag.startswith(" "):
        return obj
    if tag == " dict":
        return {value[0]: value[1]}
    if tag == " tuple":
        return tuple(value)
    if tag == " set":
        return set(value)
    decode = _DECODERS.get(tag)
    return obj if decode is None else decode(value)


# Made once: json.dumps() and json.loads() build a new coder on every call
# that passes options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_untag)
#: An escaped surrogate: dumps() writes none (a lone one cannot be UTF-8).
_MAY_NOT_ENCODE = re.compile(r"\\u[dD][89a-fA-F]").search


class TaggedJSONSerializer:
    """Compact JSON, with tags for the common non-JSON types (the default)."""

    def dumps(self, obj: Any) -> bytes:
        return _ENCODER.encode(_tag(obj)).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        text = data.decode("utf-8")
        obj = _DECODER.decode(text)
        if _MAY_NOT_ENCODE(text) is not None or (
            text.count("[") + text.count("{") > MAX_DEPTH
        ):
            # Not written by dumps()? A string with a lone surrogate (or a
            # value nested too deep) would fail every save and every check
            # of a value changed in place: ValueError, as for any damage.
            _ENCODER.encode(_tag(obj)).encode("utf-8")
        return obj

    def __repr__(self) -> str:
        return "TaggedJSONSerializer()"


class PickleSerializer:
    """Pickle, for server-side stores only: loading runs code named by the data."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)

    def __repr__(self) -> str:
        return "PickleSerializer()"


def _instance_of(cls: type, path: str) -> Any:
    """An instance of the serializer class ``path`` names, made with no arguments;
    ConfigError if that fails (a class that needs options), not its TypeError,
    so that startup and ``wsgisession check`` say which setting is wrong."""
    try:
        return cls()
    except Exception as exc:
        from .errors import ConfigError

        raise ConfigError(
            f"serializer: {path!r} names a class, made with no arguments, which "
            f"failed ({type(exc).__name__}: {exc}); give a class that takes none, "
            "or in Python pass an instance (serializer=Class(...))"
        ) from exc


def resolve_serializer(value: str | Serializer) -> Serializer:
    """Turn the ``serializer`` option ("json", "pickle", a dotted path or an object) into an object."""
    if value == "json":
        return TaggedJSONSerializer()
    if value == "pickle":
        return PickleSerializer()
    if isinstance(value, str):
        from ._coerce import import_dotted

        path, value = value, import_dotted(value)
        if isinstance(value, type):
            value = _instance_of(value, path)
    if callable(getattr(value, "dumps", None)) and callable(
        getattr(value, "loads", None)
    ):
        return cast(Serializer, value)  # it has both: a Serializer
    from .errors import ConfigError

    raise ConfigError(
        f"serializer: {value!r} has no dumps() and loads(); expected 'json', 'pickle', "
        "'package.module:Name' or an object with dumps(obj) -> bytes and loads(bytes) -> obj"
    )
