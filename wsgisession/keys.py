"""Session ids: how they are made, checked, and turned into storage keys.

An id is 32 random bytes from :func:`os.urandom` (256 bits, the source
:mod:`secrets` draws from), URL-safe base64
without padding: always 43 characters. Stores never see raw ids as storage
keys: they use :func:`storage_key`, a SHA-256 of the id, so a dump of the
store or a directory listing yields nothing a client could present.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import os
import re
from collections.abc import Callable

KEY_BYTES = 32
KEY_LENGTH = 43
_KEY_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def urlsafe_base64(data: bytes) -> bytes:
    """URL-safe base64 without padding: ``urlsafe_b64encode(data).rstrip(b"=")``
    with C calls only (it runs for every new session and signed cookie)."""
    text = binascii.b2a_base64(data, newline=False)
    return text.translate(_URL_SAFE).rstrip(b"=")


def generate_key() -> str:
    """Return a fresh session id with 256 bits of randomness
    (``secrets.token_urlsafe(32)``; :func:`urlsafe_base64`, spelled out:
    the padding and newline deleted by the translation)."""
    encoded = binascii.b2a_base64(os.urandom(KEY_BYTES))
    return encoded.translate(_URL_SAFE, b"=\n").decode()


def is_valid_key(value: object) -> bool:
    """Whether ``value`` has the exact shape of an id :func:`generate_key` makes."""
    return type(value) is str and len(value) == KEY_LENGTH and _well_formed(value)


def plain_pair_matcher(cookie_name: str) -> Callable[[str], re.Match[str] | None]:
    """The ``fullmatch`` of a ``Cookie`` header that is a single plain pair
    ``cookie_name=ID`` of an ``ID`` :func:`is_valid_key` accepts (its group 1):
    the header of most returning clients, checked in one C call."""
    return re.compile(f"{re.escape(cookie_name)}=({_KEY_FORMAT.pattern})").fullmatch


@functools.lru_cache(maxsize=1024)
def _well_formed(value: str) -> bool:
    """The id pattern's verdict, kept for the ids seen lately (as :func:`storage_key`)."""
    return _KEY_FORMAT.fullmatch(value) is not None


#: Storage keys of the ids seen lately; emptied when full. A plain dict
#: rather than an LRU cache: most misses are new sessions' ids, and an LRU's
#: bookkeeping on a miss cost a new session more than the hashing itself.
_storage_keys: dict[str, str] = {}
#: The same dict, for a store's load and save to read a name kept without
#: a call (``STORAGE_KEYS.get(key) or hash_storage_key(key)``).
STORAGE_KEYS = _storage_keys
_MAX_STORAGE_KEYS = 1024


def storage_key(session_key: str) -> str:
    """The name a server-side store files a session under (hex SHA-256).

    Kept for the ids seen lately: a request that loads and saves its
    session names its record twice. Any text has one (an id is ASCII, and
    its UTF-8 is its ASCII): ``delete()`` of a string no session can have,
    non-ASCII included, names an absent record, not an error.
    """
    return _storage_keys.get(session_key) or hash_storage_key(session_key)


def hash_storage_key(session_key: str) -> str:
    """:func:`storage_key`, hashed without looking it up first (the id of a
    new record, or one just looked up and missed), and kept."""
    name = hashlib.sha256(session_key.encode("utf-8", "surrogatepass")).hexdigest()
    if len(_storage_keys) >= _MAX_STORAGE_KEYS:
        _storage_keys.clear()
    _storage_keys[session_key] = name
    return name


def user_storage_key(user_id: str) -> str:
    """The name a store files a user's index under (hex SHA-256 of the user id).

    Salted apart from :func:`storage_key`, so that a user id can never name
    a session record.
    """
    return hashlib.sha256(b"wsgisession-user:" + user_id.encode("utf-8")).hexdigest()
