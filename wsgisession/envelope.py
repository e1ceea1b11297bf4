"""The record format: a session's data, creation time and expiry as bytes.

A stored record is the serializer's encoding of
``{"v": 1, "data": {...}, "created": <unix time>, "expiry": <Expiry>,
"saved": <unix time>, "user": <owner>}``; ``saved`` (the last save, for
``reissue_time`` and listings) and ``user`` (the owner's id, for a session
bound with ``bind_user``) are optional: records written before them, or of
a session bound to no user, lack them, and older readers ignore them.
Both functions are pure: the serializer in, bytes or parts out. Changing
the layout means a new ``v`` and a decoder that still reads version 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .errors import UnserializableValue
from .expiry import Expiry, decode_moment
from .serializers import Serializer

__all__ = ["FORMAT_VERSION", "CorruptRecord", "Envelope", "decode", "encode"]

FORMAT_VERSION = 1


class Envelope(NamedTuple):
    """A record's parts: the session's data, when it was created, its expiry,
    when it was last saved (None if the record does not say) and its owner
    (None for a session bound to no user)."""

    data: dict[str, Any]
    created: float
    expiry: Expiry
    saved_at: float | None = None
    user: str | None = None


class CorruptRecord(ValueError):
    """A record that cannot be read back; the session starts empty."""


def encode(serializer: Serializer, envelope: Envelope) -> bytes:
    """The record's bytes; an unserializable value is reported by its key."""
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
        for key, value in data.items():
            try:
                dumps({"value": value})
            except Exception:  # noqa: BLE001 - whatever the serializer raises
                raise UnserializableValue(key, value, str(exc)) from exc
        raise


def decode(serializer: Serializer, payload: bytes) -> Envelope:
    """The record's parts; :class:`CorruptRecord` saying why if it is damaged."""
    try:
        record = serializer.loads(payload)
        if record.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown record format {record.get('v')!r}")
        data, created, expiry = record["data"], record["created"], record["expiry"]
        if not isinstance(data, dict) or not isinstance(created, (int, float)):
            raise TypeError("malformed envelope")
        if not (expiry is None or type(expiry) is int or isinstance(expiry, str)):
            raise TypeError(f"malformed expiry {expiry!r}")
        decode_moment(expiry)
        saved_at, user = record.get("saved"), record.get("user")
        if saved_at is not None and not isinstance(saved_at, (int, float)):
            raise TypeError(f"malformed save time {saved_at!r}")
        if not (user is None or (isinstance(user, str) and user)):
            raise TypeError(f"malformed user {user!r}")
    except Exception as exc:
        raise CorruptRecord(f"{type(exc).__name__}: {exc}") from exc
    saved = None if saved_at is None else float(saved_at)
    return Envelope(data, float(created), expiry, saved, user)
