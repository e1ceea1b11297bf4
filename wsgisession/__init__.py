"""wsgisession: server-side sessions for WSGI apps, with Django's semantics."""

from __future__ import annotations

from .errors import (
    ConfigError,
    SessionCookieTooLarge,
    SessionError,
    SessionInterrupted,
    StoreUnavailable,
)
from .middleware import SessionMiddleware
from .paste import make_middleware
from .session import Session
from .usersessions import UserSession

__version__ = "0.1.0.dev0"

__all__ = [
    "ConfigError",
    "Session",
    "SessionCookieTooLarge",
    "SessionError",
    "SessionInterrupted",
    "SessionMiddleware",
    "StoreUnavailable",
    "UserSession",
    "__version__",
    "make_middleware",
]
