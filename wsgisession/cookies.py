"""The session cookie: reading it, deciding per response, writing it.

:func:`decide` is the one cookie policy: from the session's state, the
settings and the status it says whether a response sets the cookie
(saving first), deletes it, or leaves it alone. :func:`session_cookie`
and :func:`deleting_cookie` say which attributes it carries. Parsing and
formatting are werkzeug's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

from werkzeug.http import dump_cookie, http_date
from werkzeug.sansio.http import parse_cookie

from . import clock
from .config import Settings
from .errors import COOKIE_SIZE_LIMIT, SessionCookieTooLarge

__all__ = [
    "COOKIE_SIZE_LIMIT",
    "CookieAction",
    "SessionState",
    "check_cookie_size",
    "cookie_values",
    "decide",
    "deleting_cookie",
    "is_touched",
    "mark_private",
    "merge_vary",
    "session_cookie",
]


class CookieAction(enum.Enum):
    """What a response does with the session cookie."""

    NOTHING = "nothing"
    #: Save the session (unless done already) and send its cookie.
    SET = "set"
    #: Send a cookie that removes the client's one.
    DELETE = "delete"


class SessionState(NamedTuple):
    """What the cookie policy needs to know of a loaded session."""

    #: The request used the session (read or write): the response varies by cookie.
    accessed: bool
    #: The session changed (or the app says so).
    modified: bool
    #: No key and no data: nothing to keep.
    empty: bool
    #: The request came with a session cookie.
    had_cookie: bool
    #: ``reissue_time`` has passed since the last save: re-save it unchanged.
    reissue_due: bool = False


def is_touched(accessed: bool, modified: bool, settings: Settings) -> bool:
    """Whether a response must look at the session at all (else: headers as they are)."""
    return accessed or modified or settings.save_every_request


def decide(state: SessionState, settings: Settings, status: str) -> CookieAction:
    """The cookie policy: set, delete or leave the session cookie on this response.

    An emptied session deletes the cookie the client sent; a non-empty
    session that changed (or any, with ``save_every_request``, or one due
    for ``reissue_time``) is saved and its cookie sent, unless the response
    is a server error (5xx) and ``save_on_error`` is off.
    """
    if not state.accessed:
        return CookieAction.NOTHING
    if state.empty:
        return CookieAction.DELETE if state.had_cookie else CookieAction.NOTHING
    if int(status[:3]) >= 500 and not settings.save_on_error:
        return CookieAction.NOTHING
    if state.modified or settings.save_every_request or state.reissue_due:
        return CookieAction.SET
    return CookieAction.NOTHING


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value the ``Cookie`` header gives for ``name``, in order.

    Malformed pairs elsewhere in the header are skipped by the parser, so
    they never hide the session cookie. WSGI gives the header as latin-1;
    bytes that are not UTF-8 become U+FFFD rather than an error.
    """
    if not header or name not in header:
        return []
    text = header.encode("latin-1", "replace").decode("utf-8", "replace")
    return parse_cookie(text).getlist(name)


def is_secure(settings: Settings, environ: Mapping[str, object]) -> bool:
    """Whether the cookie gets ``Secure`` on this request."""
    if settings.cookie_samesite == "None" or settings.cookie_partitioned:
        return True
    if settings.cookie_secure == "auto":
        return environ.get("wsgi.url_scheme") == "https"
    return bool(settings.cookie_secure)


# The last Expires date formatted, as (Unix second, HTTP date): every cookie
# saved within one second with the same age shares it.
_last_expires: tuple[int, str] = (0, "")


def expires_date(max_age: int) -> str:
    """The ``Expires`` attribute matching ``Max-Age=max_age`` sent now."""
    global _last_expires
    moment = int(clock.now()) + max_age
    cached_moment, text = _last_expires
    if moment != cached_moment:
        text = http_date(moment)
        _last_expires = (moment, text)
    return text


def session_cookie(
    settings: Settings, value: str, max_age: int | None, secure: bool
) -> tuple[str, str]:
    """The ``Set-Cookie`` header carrying ``value``; no ``Max-Age`` means browser close.

    Raises :class:`SessionCookieTooLarge` if browsers would drop it.
    """
    header = dump_cookie(
        settings.cookie_name,
        value,
        max_age=max_age,
        expires=None if max_age is None else expires_date(max_age),
        path=settings.cookie_path,
        domain=settings.cookie_domain,
        secure=secure,
        httponly=settings.cookie_httponly,
        samesite=settings.cookie_samesite or None,
        partitioned=settings.cookie_partitioned,
        max_size=0,
    )
    size = len(header.encode("latin-1", "replace"))
    if size > COOKIE_SIZE_LIMIT:
        raise SessionCookieTooLarge(size, COOKIE_SIZE_LIMIT)
    return ("Set-Cookie", header)


# More than the fixed attributes can take: Expires, Max-Age, Secure,
# HttpOnly, SameSite=Strict, Partitioned and their separators.
_FIXED_ATTRIBUTES = 200


def check_cookie_size(settings: Settings, value: str, max_age: int | None) -> None:
    """Raise :class:`SessionCookieTooLarge` if the cookie carrying ``value`` would be.

    The header is only built when a bound on its size says it might be.
    """
    bound = len(value) + len(settings.cookie_name) + _FIXED_ATTRIBUTES
    bound += len(settings.cookie_domain or "") + len(settings.cookie_path)
    if bound > COOKIE_SIZE_LIMIT:
        session_cookie(settings, value, max_age, secure=True)


def deleting_cookie(settings: Settings, secure: bool) -> tuple[str, str]:
    """A ``Set-Cookie`` that removes the session cookie: same Domain, Path, SameSite."""
    header = dump_cookie(
        settings.cookie_name,
        "",
        max_age=0,
        expires=0,
        path=settings.cookie_path,
        domain=settings.cookie_domain,
        secure=secure,
        samesite=settings.cookie_samesite or None,
        partitioned=settings.cookie_partitioned,
        max_size=0,
    )
    return ("Set-Cookie", header)


def mark_private(headers: list[tuple[str, str]]) -> None:
    """Add ``Cache-Control: private``, in place, unless the app set a Cache-Control.

    For a response that sets or deletes the session cookie: a shared cache
    that kept it would hand one user's session to the next.
    """
    for name, _ in headers:
        if name.lower() == "cache-control":
            return
    headers.append(("Cache-Control", "private"))


def merge_vary(headers: list[tuple[str, str]]) -> None:
    """Add ``Cookie`` to the response's ``Vary`` header, in place, once."""
    for index, (name, value) in enumerate(headers):
        if name.lower() != "vary":
            continue
        tokens = [token.strip() for token in value.split(",") if token.strip()]
        if "*" in tokens or any(token.lower() == "cookie" for token in tokens):
            return
        headers[index] = (name, ", ".join([*tokens, "Cookie"]))
        return
    headers.append(("Vary", "Cookie"))
