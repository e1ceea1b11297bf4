"""The secrets of a SignedCookieStore: its key and fallbacks, checked.

Each must be strong (at least ``MIN_SECRET_BYTES``), and a list of keys
passed as one comma-separated string is refused: split on whitespace it
would make keys that verify no cookie, ending every session signed with an
old key with no error at startup.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import _coerce as c
from .._secret_strength import MAKE_SECRET, MIN_SECRET_BYTES, strong_secret
from ..errors import ConfigError

__all__ = ["cookie_secrets", "parse_fallbacks", "parse_secret"]


def cookie_secrets(
    secret_key: str | bytes | None, fallbacks: Sequence[str | bytes]
) -> list[bytes]:
    """The secret and its fallbacks as bytes, newest first; ConfigError if bad.

    Each must be at least 32 bytes; no error shows a secret.
    """
    if isinstance(fallbacks, (str, bytes)):
        raise ConfigError("fallbacks must be a list of secret keys, not one string")
    if fallbacks is not None and not isinstance(fallbacks, Sequence):
        raise ConfigError(
            f"fallbacks must be a list of secret keys, not a {type(fallbacks).__name__}"
        )
    if secret_key is None or secret_key in ("", b""):
        raise ConfigError(
            f"SignedCookieStore needs secret_key: a secret of at least "
            f"{MIN_SECRET_BYTES} bytes. Make one with: {MAKE_SECRET}"
        )
    keys = [strong_secret("secret_key", secret_key)]
    for index, key in enumerate(fallbacks or ()):
        keys.append(strong_secret(f"fallbacks[{index}]", key))
    _refuse_comma_lists("fallbacks", [_as_text(key) for key in keys[1:]])
    return keys


def _as_text(key: bytes) -> str:
    """``key`` as text, to look for a list of keys in it; "" for bytes that
    are no UTF-8 (``os.urandom()``'s): no text was split into them, and the
    commas such a key may hold (one in eight of 32 bytes) are its own."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _refuse_comma_lists(name: str, keys: Sequence[str]) -> None:
    """ConfigError if ``keys`` are a comma-separated list split on whitespace.

    ``"old1,old2".split()`` (or ``"old1, old2"``), passed on as fallbacks,
    is one key holding both (or keys ending in a comma), which verify no
    cookie: every session signed with an old key would end, with no error
    at startup.
    """
    last = len(keys) - 1
    for index, item in enumerate(keys):
        if _comma_separated(item, first=index == 0, last=index == last):
            raise ConfigError(
                f"{name}[{index}] holds a comma: separate the fallbacks with spaces "
                "or newlines, not commas"
            )


def parse_secret(key: str, raw: str) -> str | None:
    """The ``secret_key`` of an ini value; ConfigError if it holds whitespace.

    A key never does (``token_urlsafe`` makes none): whitespace in it is a
    comment after it, or an indented key below it (``encrypt = true``)
    swallowed into the secret, and such a key could not be rotated into
    the whitespace-separated ``secret_key_fallbacks``. Never shows the value.
    """
    secret = c.parse_optional_text(key, raw)
    if secret is not None and any(character.isspace() for character in secret):
        raise ConfigError(f"{key} holds whitespace: {c.INI_TEXT_HINT}")
    return secret


def parse_fallbacks(key: str, raw: str) -> tuple[str, ...]:
    """The whitespace-separated fallbacks of an ini value; commas are refused.

    ``old1, old2`` (or ``old1,old2``) would be read as keys ending in a
    comma, or as one key holding both, which verify no cookie: every
    session signed with an old key would end, with no error at startup.
    A short word starting with ``#`` or ``;`` is a comment taken for a key.
    """
    keys = c.parse_list(key, raw)
    for index, item in enumerate(keys):
        if item.startswith(("#", ";")) and len(item.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{key}[{index}] is no key but a comment: {c.INI_TEXT_HINT}"
            )
    _refuse_comma_lists(key, keys)
    return keys


def _comma_separated(item: str, *, first: bool, last: bool) -> bool:
    """Whether ``item`` is part of a list of keys, not one key that holds a comma.

    A comma joins it to its neighbour (``old1, old2``, ``old1 ,old2``), or
    it holds keys of 32+ bytes each; a key may start or end with a comma
    (pwgen -y makes such keys) where no neighbour follows or precedes it.
    """
    if (item.endswith(",") and not last) or (item.startswith(",") and not first):
        return True
    pieces = [piece for piece in item.split(",") if piece]
    return len(pieces) > 1 and all(
        len(piece.encode(errors="surrogatepass")) >= MIN_SECRET_BYTES
        for piece in pieces
    )
