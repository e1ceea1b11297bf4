"""Whether a secret key is strong enough to sign sessions with.

A key shorter than 32 bytes, a placeholder (a pattern repeated, a handful
of characters) and an example from the documentation are refused: anyone
could guess them, or read them, and sign sessions. Errors never show the key.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

__all__ = ["EXAMPLE_SECRETS", "MAKE_SECRET", "MIN_SECRET_BYTES", "strong_secret"]

#: The shortest secret key accepted, in bytes (UTF-8 for a str).
MIN_SECRET_BYTES = 32
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
#: Keys that wsgisession's documentation shows (a sample output of
#: ``token_urlsafe(32)``, placeholders once passed to the store): public, so
#: anyone could sign sessions with them.
EXAMPLE_SECRETS = frozenset(
    {
        b"3q0D0f7bVn2mX5Hc9kTzqL1rWc8yP4sA6eJtU0hZgGk",
        b"a long random secret from your secret store",
        b"the previous secret, while rotating",
        b"a-long-random-secret-of-32-bytes-or-more",
    }
)


#: A secret of fewer distinct characters, or that repeats a pattern of at
#: most this many, is a placeholder ("x" * 32, "changeme" * 4), however long.
_MIN_DISTINCT = 5
_LONGEST_PATTERN = 16


def _is_placeholder(value: bytes) -> bool:
    """Whether ``value`` is too regular to be random (Django's check W009
    asks 5 distinct characters too)."""
    if len(set(value)) < _MIN_DISTINCT:
        return True
    return any(value[n:] == value[:-n] for n in range(1, _LONGEST_PATTERN + 1))


def strong_secret(key: str, value: Any) -> bytes:
    """``value`` as bytes, if it is a str or bytes secret of at least 32 bytes,
    not a placeholder and not an example of the documentation.

    The ConfigError never shows the value, only its type or length.
    """
    if isinstance(value, str):
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:  # raw bytes from os.environ: never echoed
            raise ConfigError(
                f"{key} is not UTF-8 text (an environment variable holding raw "
                f"bytes?). Make one with: {MAKE_SECRET}"
            ) from None
    if not isinstance(value, bytes):
        raise ConfigError(
            f"invalid value for {key!r}: a {type(value).__name__}; expected a "
            f"secret key (str or bytes). Make one with: {MAKE_SECRET}"
        )
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{key} is too short ({len(value)} bytes): a secret key must be at least "
            f"{MIN_SECRET_BYTES} bytes, or a stolen cookie lets anyone guess it "
            f"offline. Make one with: {MAKE_SECRET}"
        )
    if _is_placeholder(value):
        raise ConfigError(
            f"{key} is a placeholder, not a secret: it repeats a pattern of a "
            f"few characters or has fewer than {_MIN_DISTINCT} different ones, "
            f"so it can be guessed. Make one with: {MAKE_SECRET}"
        )
    if value in EXAMPLE_SECRETS:
        raise ConfigError(
            f"{key} is an example from wsgisession's documentation, which anyone "
            f"can read and sign sessions with. Make one with: {MAKE_SECRET}"
        )
    return value
