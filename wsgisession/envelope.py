"""The record format: a session's data, creation time and expiry as bytes.

A stored record is the serializer's encoding of
``{"v": 1, "data": {...}, "created": <unix time>, "expiry": <Expiry>,
"saved": <unix time>, "user": <owner>}``; ``saved`` (the last save, for
``reissue_time`` and listings) and ``user`` (the owner's id, for a session
bound with ``bind_user``) are optional: records written before them, or of
a session bound to no user, lack them, and older readers ignore them.
Both functions are pure: the serializer in, bytes or parts out. Changing
the layout means a new ``v`` and a decoder that still reads version 1.

Decoding is the largest cost of a request that reads its session, and the
same record is read again and again (one user's requests, served by this
process) until it changes; so the records decoded or saved lately are kept
by session key, with their bytes, and decoded once. Only small records of
the default serializer (its ``loads()`` depends on the bytes alone) whose
values are all immutable are kept; each request receives its own copy of
the dict.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, NamedTuple

from ._recordtext import (
    DataText,
    RecordTail,
    changed_data_text,
    data_text,
    record_tail,
    record_text,
)
from .errors import UnserializableValue
from .expiry import Expiry, check_stored
from .serializers import Serializer, TaggedJSONSerializer

__all__ = [
    "FORMAT_VERSION",
    "IMMUTABLE_TYPES",
    "KEPT_DECODINGS",
    "CorruptRecord",
    "Envelope",
    "Joined",
    "Kept",
    "Parts",
    "decode",
    "encode",
    "encode_again",
    "encode_new",
    "encode_text",
    "forget",
    "keep",
    "remember",
]

FORMAT_VERSION = 1

#: Types whose values cannot change in place.
IMMUTABLE_TYPES = frozenset((str, int, float, bool, type(None), bytes))


class Envelope(NamedTuple):
    """A record's parts: the session's data, when it was created, its expiry,
    when it was last saved (None if the record does not say) and its owner
    (None for a session bound to no user)."""

    data: dict[str, Any]
    created: float
    expiry: Expiry
    saved_at: float | None = None
    user: str | None = None


#: ``Envelope`` from a tuple of its five parts, without the Python-level
#: ``__new__`` (the hot paths make one or two per request).
new_envelope = functools.partial(tuple.__new__, Envelope)

#: An envelope's five parts in its order, as a plain tuple: what a save
#: makes to encode and keep needs no field names (an ``Envelope`` is one).
Parts = tuple[dict[str, Any], float, Expiry, float | None, str | None]

#: What is kept for a session's record (see ``_decoded`` below): its bytes,
#: its parts, the text of its data and of the record after its data.
Kept = tuple[bytes, Envelope, DataText | None, RecordTail | None]

#: A record joined again from its kept text (:func:`encode_again`): what is
#: kept for it, its UTF-8 first.
Joined = tuple[bytes, Envelope, DataText, RecordTail]


class CorruptRecord(ValueError):
    """A record that cannot be read back; the session starts empty."""


def encode(serializer: Serializer, envelope: Envelope) -> bytes:
    """The record's bytes; an unserializable value is reported by its key."""
    return encode_text(serializer, envelope)[0]


def encode_text(
    serializer: Serializer,
    envelope: Parts,
    previous: bytes | None = None,
    changed: Iterable[str] | None = (),
    key: str | None = None,
    saved_text: str | None = None,
) -> tuple[bytes, DataText | None]:
    """The record's bytes, and the text of its data to :func:`remember` them with.

    ``previous`` is the payload of session ``key`` the data was loaded from
    and ``changed`` the keys set since: when that payload's text is kept,
    only their items are written again; None: keys were deleted since (the
    data's order may differ), all are written. ``saved_text`` is the JSON of the
    record's save time, if known.
    """
    data, created, expiry, saved_at, user = envelope
    if type(serializer) is TaggedJSONSerializer:  # joined as version 1 writes it
        text = None
        if previous is not None and key is not None and changed is not None:
            if saved_at is not None:
                again = encode_again(
                    serializer, key, previous, data, changed, created, expiry,
                    saved_at, saved_text, user,
                )  # fmt: skip
                if again is not None:
                    return again[0], again[2]
            kept = _decoded.get(key)
            if kept is not None and kept[2] is not None and kept[0] == previous:
                text = changed_data_text(kept[2], data, changed)
        if text is None and len(data) <= _MOST_KEPT_ITEMS:
            text = data_text(data)
        if text is not None:
            joined = record_text(text, created, expiry, saved_at, user, saved_text)
            if joined is not None:
                try:
                    return joined.encode("utf-8"), text
                except UnicodeEncodeError:  # a lone surrogate: reported below
                    pass
    return _dumped(serializer, envelope), None


def encode_new(
    serializer: Serializer,
    data: dict[str, Any],
    created: float,
    expiry: Expiry,
    saved_at: float,
    user: str | None,
    saved_text: str | None,
) -> bytes:
    """:func:`encode_text`'s bytes of a record joined from no kept text (a new
    one's, whose data's text is not kept), its parts given one by one."""
    if type(serializer) is TaggedJSONSerializer:  # joined as version 1 writes it
        text = data_text(data) if len(data) <= _MOST_KEPT_ITEMS else None
        if text is None:  # not plain, or never kept: the serializer's to write
            pass
        elif created is saved_at and expiry is None and user is None and saved_text:
            # record_text() of a session saved as it is created, spelled out
            try:
                return (
                    f'{{"v":1,"data":{{{",".join(text.values())}}},"created":'
                    f'{saved_text},"expiry":null,"saved":{saved_text}}}'
                ).encode()
            except UnicodeEncodeError:  # a lone surrogate: reported below
                pass
        else:
            joined = record_text(text, created, expiry, saved_at, user, saved_text)
            if joined is not None:
                try:
                    return joined.encode()
                except UnicodeEncodeError:  # a lone surrogate: reported below
                    pass
    return _dumped(serializer, (data, created, expiry, saved_at, user))


def _dumped(serializer: Serializer, envelope: Parts) -> bytes:
    """The record's bytes as the serializer writes them; an unserializable
    value is reported by its key."""
    data, created, expiry, saved_at, user = envelope
    record = {"v": FORMAT_VERSION, "data": data, "created": created, "expiry": expiry}
    if saved_at is not None:
        record["saved"] = saved_at
    if user is not None:
        record["user"] = user
    dumps = serializer.dumps
    try:
        return dumps(record)
    except Exception as exc:
        for name, value in data.items():
            try:
                dumps({"data": {name: value}})  # as deep in as in the record
            except Exception:  # noqa: BLE001 - whatever the serializer raises
                raise UnserializableValue(name, value, str(exc)) from exc
        # Each value alone is fine: keys clash (1 and "1" are both JSON's "1").
        clash = next((name for name in data if type(name) is not str), None)
        if clash is not None:
            raise UnserializableValue(clash, data[clash], str(exc)) from exc
        raise


def encode_again(
    serializer: Serializer,
    key: str,
    previous: bytes,
    data: dict[str, Any],
    changed: Iterable[str],
    created: float,
    expiry: Expiry,
    saved_at: float,
    saved_text: str | None,
    user: str | None,
) -> Joined | None:
    """:func:`encode_text` of session ``key``'s record saved again, from the
    text kept for ``previous`` (its payload as loaded, unchanged in the store
    since; no key deleted since, ``changed`` set) with ``saved_text`` the JSON
    of the save time ``saved_at``: the record's UTF-8, with its parts (a copy
    of ``data``), its data's text and its tail's, kept for ``key`` at once;
    None if none is kept, or it cannot be joined (a lone surrogate included:
    the general encoder reports it)."""
    if saved_text is None or type(serializer) is not TaggedJSONSerializer:
        return None
    kept = _decoded.get(key)
    if kept is None:
        return None
    kept_payload, parts, kept_text, tail = kept
    if kept_text is None or kept_payload != previous:
        return None
    # The copy first: the bytes and the parts kept for them are made of
    # the same data, even if another thread of the request sets a key.
    copied = dict(data)
    items = changed_data_text(kept_text, copied, changed)
    if items is None:
        return None
    # The kept tail, if kept for these very parts (the same objects: an
    # expiry or owner set since is another).
    if tail is None or not (
        parts[1] is created and parts[2] is expiry and parts[4] is user
    ):
        tail = record_tail(created, expiry, user)
        if tail is None:
            return None
    joined = ",".join(items.values())
    text = f'{{"v":1,"data":{{{joined}{tail[0]}{saved_text}{tail[1]}'
    # The record it is joined from was kept, so small: a copy is seldom made
    # for a record too large to keep (once, as it grows past the bound).
    parts = new_envelope((copied, created, expiry, saved_at, user))
    try:
        again = text.encode("utf-8"), parts, items, tail
    except UnicodeEncodeError:
        return None
    # Kept at once, before the store writes it: an entry is the decoding of
    # its bytes, which a load compares, whether the store writes them or not.
    keep(key, again)
    return again


def decode(serializer: Serializer, payload: bytes, key: str | None = None) -> Envelope:
    """The record's parts; :class:`CorruptRecord` saying why if it is damaged.

    ``key`` is the session the record is of: its decoding is kept for it.
    """
    if key is not None and type(serializer) is TaggedJSONSerializer:
        kept = _decoded.get(key)
        if kept is not None and kept[0] == payload:
            data, created, expiry, saved_at, user = kept[1]
            return new_envelope((dict(data), created, expiry, saved_at, user))
    try:
        record = serializer.loads(payload)
        format_version = record.get("v")
        if format_version != FORMAT_VERSION:
            raise ValueError(f"unknown record format {format_version!r}")
        data, created, expiry = record["data"], record["created"], record["expiry"]
        if not isinstance(data, dict) or not isinstance(created, (int, float)):
            raise TypeError("malformed envelope")
        if not (expiry is None or type(expiry) is int or isinstance(expiry, str)):
            raise TypeError(f"malformed expiry {expiry!r}")
        if expiry is not None:
            check_stored(expiry)
        saved_at, user = record.get("saved"), record.get("user")
        if saved_at is not None and not isinstance(saved_at, (int, float)):
            raise TypeError(f"malformed save time {saved_at!r}")
        if not (user is None or (isinstance(user, str) and user)):
            raise TypeError(f"malformed user {user!r}")
        # An int too large for a float (10**400) raises OverflowError here.
        created = float(created)
        saved = None if saved_at is None else float(saved_at)
    except Exception as exc:
        raise CorruptRecord(f"{type(exc).__name__}: {exc}") from exc
    parts = Envelope(data, created, expiry, saved, user)
    if key is not None:
        remember(serializer, key, payload, parts)
    return parts


# The records decoded or saved lately, by session key: the record's bytes
# (a load compares them, which costs far less than hashing them), every
# part, the data in a dict of its own that no request ever receives, and
# the JSON text of the data when this process wrote it (for the next save
# to start from), and the text of the record after its data when it was
# saved again (see encode_again).
_decoded: dict[str, Kept] = {}
#: The same dict, for ``SessionRecord.open()`` to read without a call: its
#: entries' envelopes are shared, their data never handed out uncopied.
KEPT_DECODINGS = _decoded
_KEPT_RECORDS = 256
_KEPT_RECORD_BYTES = 4096
#: More items than a kept record holds (each is at least ``"":0,``): their
#: text would never be kept, and the serializer writes it several times
#: faster than :func:`data_text` joins it item by item (10,000 keys: 5 ms
#: against 20 ms a save).
_MOST_KEPT_ITEMS = _KEPT_RECORD_BYTES // 5
_STR_ONLY = frozenset((str,))


def _immutable(data: dict[str, Any]) -> bool:
    """Whether no value can change in place and every key is a string (as
    JSON gives them back)."""
    return IMMUTABLE_TYPES.issuperset(map(type, data.values())) and (
        _STR_ONLY.issuperset(map(type, data))
    )


def forget(key: str) -> None:
    """Drop what is kept for session ``key`` (its record gone or moved)."""
    _decoded.pop(key, None)


def remember(
    serializer: Serializer,
    key: str,
    payload: bytes,
    parts: Parts,
    text: DataText | None = None,
) -> None:
    """Keep ``parts`` as the decoding of session ``key``'s record ``payload``,
    if it may be (see above); it replaces what was kept for ``key``.

    ``text`` is the text :func:`encode_text` made of the data: its values are
    then known to be plain.
    """
    data, created, expiry, saved_at, user = parts
    if type(serializer) is not TaggedJSONSerializer or not (
        text is not None or _immutable(data)
    ):
        _decoded.pop(key, None)
        return
    if text is None:  # the same record decoded again: its text still applies
        kept = _decoded.get(key)
        if kept is not None and kept[0] == payload:
            text = kept[2]
    parts = new_envelope((dict(data), created, expiry, saved_at, user))
    keep(key, (payload, parts, text, None))


def keep(key: str, kept: Kept) -> None:
    """Keep ``kept`` for session ``key``, in place of what was: what
    :func:`remember` keeps (the default serializer's parts, plain values, a
    copy of the data among them), or :func:`encode_again` joined; a large
    record is not kept."""
    previous = _decoded.pop(key, None)
    if len(kept[0]) > _KEPT_RECORD_BYTES:
        return
    while previous is None and len(_decoded) >= _KEPT_RECORDS:
        try:
            del _decoded[next(iter(_decoded))]  # the oldest
        except (KeyError, RuntimeError, StopIteration):
            pass  # another thread changed the cache meanwhile: look again
    _decoded[key] = kept
