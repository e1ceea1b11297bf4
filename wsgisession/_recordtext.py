"""A record's JSON text, joined from pieces kept by value and by record.

A write request changes a value or two of its session and saves the whole
record again, so most of what it writes was written by the save before.
Two things are kept so that the work is not done again:

- the JSON text of each plain string (up to :data:`MAX_KEPT_LENGTH`
  characters) and float, by value: escaping and float formatting are done
  once per value rather than once per save;
- the text of each item of a saved record's data (:class:`DataText`), so
  that the next save of that record rewrites only the items its request
  set (:func:`changed_data_text`).

The text is exactly what ``json.JSONEncoder`` with ``separators=(",", ":")``
and ``ensure_ascii=False`` writes for the record (a test compares them).
Anything else (a value that needs a tag, a key that is not a string, NaN)
answers None, and the caller encodes it the general way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any

from .clock import save_moment

__all__ = [
    "MAX_KEPT_LENGTH",
    "DataText",
    "RecordTail",
    "changed_data_text",
    "data_text",
    "record_tail",
    "record_text",
    "save_moment",
]

#: Longer strings are escaped on every save (kept, they would cost memory
#: for little gain: their encoding is a small part of writing them).
MAX_KEPT_LENGTH = 1024
_MAX_KEPT = 4096
#: The most characters the kept strings and their texts hold together: a
#: client whose input an app stores (a search box) cannot make the cache of
#: a process big (4,096 strings of 1,024 wide characters, escaped six times
#: longer, would be over 100 MiB); the cache starts over past it.
_MAX_KEPT_CHARACTERS = 1 << 20

_strings: dict[str, str] = {}
_kept_characters = 0
_floats: dict[float, str] = {}

#: The JSON of a session's data: ``"key":value`` for each of its keys, in
#: the data's order (a new dict each save: a kept one is never changed).
DataText = dict[str, str]


def _string(value: str) -> str:
    global _kept_characters
    text = _strings.get(value)
    if text is None:
        text = encode_basestring(value)
        if len(value) <= MAX_KEPT_LENGTH:
            size = len(value) + len(text)
            if (
                len(_strings) >= _MAX_KEPT
                or _kept_characters + size > _MAX_KEPT_CHARACTERS
            ):
                _strings.clear()
                _kept_characters = 0
            _strings[value] = text
            _kept_characters += size
    return text


def _scalar(value: Any) -> str | None:
    """The JSON of a plain scalar; None for anything that needs the encoder."""
    kind = type(value)
    if kind is str:
        return _strings.get(value) or _string(value)
    if kind is int:
        try:
            return int.__repr__(value)
        except ValueError:  # over sys.get_int_max_str_digits(): the encoder's to refuse
            return None
    if kind is float:
        text = _floats.get(value)
        if text is None:
            # 0.0 == -0.0 and NaN != NaN: neither is kept; NaN and the
            # infinities are the encoder's to write.
            if not math.isfinite(value):
                return None
            text = float.__repr__(value)
            if value:
                if len(_floats) >= _MAX_KEPT:
                    _floats.clear()
                _floats[value] = text
        return text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return None


def _moment(value: Any) -> str | None:
    """The JSON of a save's time stamp: formatted, never kept (each save has its own)."""
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _scalar(value)


def data_text(data: dict[Any, Any]) -> DataText | None:
    """The JSON of a dict of plain values under string keys, else None."""
    if not data:  # (the check after the loop reads the last key)
        return {}
    items = {}
    text: str | None
    for key, value in data.items():  # each item "key":value, written here
        if type(key) is not str:
            return None
        if type(value) is str:  # _scalar(), spelled out for the commonest value
            text = _strings.get(value) or _string(value)
        else:
            text = _scalar(value)
            if text is None:
                return None
        items[key] = f"{_strings.get(key) or _string(key)}:{text}"
    if key.startswith(" ") and len(items) == 1:  # the tag scheme wraps it
        return None
    return items


def changed_data_text(
    previous: DataText, data: dict[str, Any], changed: Iterable[str]
) -> DataText | None:
    """The JSON of ``data``: ``previous`` with the items of ``changed`` rewritten.

    ``data`` must hold the keys of ``previous`` in the same order (no key
    deleted since: the change set says so) and the values ``previous`` was
    made from, except under ``changed``; None if a changed value is not
    plain or its key not a string. Keys added since come last, in the
    data's order (``changed`` is a set: its order is the hashes').
    """
    items = previous.copy()
    try:
        for key in changed:  # as in data_text()
            if type(key) is not str:
                return None
            value = data[key]
            kind = type(value)
            if kind is str:  # _scalar(), spelled out for the commonest values
                text = _strings.get(value) or _string(value)
            elif kind is int:  # past sys.get_int_max_str_digits(): ValueError
                text = int.__repr__(value)
            else:
                scalar = _scalar(value)
                if scalar is None:  # not plain
                    return None
                text = scalar
            items[key] = f"{_strings.get(key) or _string(key)}:{text}"
    except ValueError:  # an int too long to write: the encoder's to refuse
        return None
    if len(items) != len(data):  # a key deleted since: see above
        return None
    if len(items) != len(previous):  # keys added: in the data's order, not
        if not previous:  # the change set's; alone, the tag scheme may wrap one
            return data_text(data)
        return {key: items[key] for key in data}
    return items


def record_text(
    data: DataText,
    created: Any,
    expiry: Any,
    saved_at: Any = None,
    user: Any = None,
    saved_text: str | None = None,
) -> str | None:
    """The JSON of the record ``{"v": 1, "data": ..., "created": ..., "expiry": ...}``.

    ``"saved"`` and ``"user"`` follow when not None, as the envelope writes
    them; ``saved_text`` is the text of ``saved_at`` if known (:func:`save_moment`),
    or alone, of a save time given only as text.
    """
    if saved_text is None and saved_at is not None:
        saved_text = _moment(saved_at)
        if saved_text is None:
            return None
    if created is saved_at:  # a new session is saved as it is created
        created_text = saved_text
    else:
        created_text = _scalar(created)  # kept: the same at every save of a session
    expiry_text = "null" if expiry is None else _scalar(expiry)
    if created_text is None or expiry_text is None:
        return None
    # What follows the expiry: the save time, then the owner.
    after = "" if saved_text is None else f',"saved":{saved_text}'
    if user is not None:
        user_text = _scalar(user)
        if user_text is None:
            return None
        after = f'{after},"user":{user_text}'
    items = ",".join(data.values())
    return (
        f'{{"v":1,"data":{{{items}}},"created":{created_text}'
        f',"expiry":{expiry_text}{after}}}'
    )


#: A record's text after its data: up to its save time's, and after it
#: (see :func:`record_tail`).
RecordTail = tuple[str, str]


def record_tail(created: Any, expiry: Any, user: Any) -> RecordTail | None:
    """The text :func:`record_text` writes after the data of a record of
    ``created``, ``expiry`` and ``user`` saved at some time: up to the save
    time's text, and after it; None where record_text would say None.

    A session saved again and again keeps these (its creation, expiry and
    owner seldom change), so that its next save writes only its data and
    save time.
    """
    created_text = _scalar(created)
    expiry_text = "null" if expiry is None else _scalar(expiry)
    if created_text is None or expiry_text is None:
        return None
    if user is None:
        return f'}},"created":{created_text},"expiry":{expiry_text},"saved":', "}"
    user_text = _scalar(user)
    if user_text is None:
        return None
    return (
        f'}},"created":{created_text},"expiry":{expiry_text},"saved":',
        f',"user":{user_text}}}',
    )
