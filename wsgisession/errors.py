"""Exceptions raised by wsgisession, all subclasses of :class:`SessionError`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LockTimeout",
    "SessionCookieTooLarge",
    "SessionError",
    "SessionInterrupted",
    "StoreUnavailable",
    "UnserializableValue",
]


class SessionError(Exception):
    """Base class of every error wsgisession raises on purpose."""


class ConfigError(SessionError, ValueError):
    """A configuration key is unknown, or its value is invalid.

    Raised at startup, when the middleware or a store is constructed; and
    at a request by a middleware nested in another one on the request's
    path whose session (same ``environ_key`` or ``cookie_name``) comes from
    another store or other settings.
    """


class StoreUnavailable(SessionError):
    """The store could not be reached or could not complete an operation.

    ``store`` is a description of the store (its ``repr``); the original
    exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, store: str = "") -> None:
        super().__init__(message)
        self.store = store


class SessionInterrupted(SessionError):
    """The session was deleted by another request while this one used it.

    A logout in another tab is the usual cause, or a login there, whose
    ``cycle_key()`` moved the session to a new key. The save is abandoned so
    that the deleted session is not brought back.
    """

    def __init__(
        self,
        message: str = (
            "The request's session was deleted before the request completed. "
            "The user may have logged out in a concurrent request, for example."
        ),
    ) -> None:
        super().__init__(message)


#: The largest ``Set-Cookie`` value (name, value and attributes) browsers keep;
#: the cookie policy and the signed cookie store both measure against it.
COOKIE_SIZE_LIMIT = 4093


class SessionCookieTooLarge(SessionError):
    """The ``Set-Cookie`` header would exceed what browsers accept.

    ``size`` is the cookie's size in bytes (name, value and attributes),
    ``limit`` the largest size allowed. With ``payload=True`` they are the
    serialized session's size before compression and the signed cookie
    store's bound on it (``MAX_PAYLOAD_SIZE``), however small the cookie.
    """

    def __init__(self, size: int, limit: int, *, payload: bool = False) -> None:
        what = (
            f"session data would be {size} bytes before compression, over the "
            f"{limit}-byte limit of a signed cookie"
            if payload
            else f"session cookie would be {size} bytes, over the {limit}-byte "
            "limit browsers accept"
        )
        super().__init__(
            f"{what}; store less in the session or use a server-side store"
        )
        self.size = size
        self.limit = limit


class UnserializableValue(SessionError, TypeError):
    """A session value cannot be serialized; ``key`` names the session key."""

    def __init__(self, key: str, value: object, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"session key {key!r} holds a value of type {type(value).__name__} "
            f"that the serializer cannot store{detail}"
        )
        self.key = key


class LockTimeout(SessionError):
    """A session lock could not be obtained within ``lock_timeout`` seconds."""
