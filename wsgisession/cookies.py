"""The session cookie: deciding per response, writing it.

:func:`decide` is the one cookie policy: from the session's state, the
settings and the status it says whether a response sets the cookie
(saving first), deletes it, or leaves it alone. :func:`session_cookie`
and :func:`deleting_cookie` say which attributes it carries; formatting
is werkzeug's. Reading the request's cookie is :mod:`.cookie_header`'s.
"""

from __future__ import annotations

import enum
import functools
import string
from collections.abc import Callable
from typing import Any, NamedTuple

from werkzeug.http import dump_cookie, http_date

from . import clock
from .config import Settings
from .errors import COOKIE_SIZE_LIMIT, SessionCookieTooLarge

__all__ = [
    "COOKIE_SIZE_LIMIT",
    "SERVER_ERRORS_FROM",
    "CookieAction",
    "SessionState",
    "check_cookie_size",
    "decide",
    "decide_for",
    "deleting_cookie",
    "fixed_secure",
    "is_touched",
    "session_cookie",
]


class CookieAction(enum.Enum):
    """What a response does with the session cookie."""

    NOTHING = "nothing"
    #: Save the session (unless done already) and send its cookie.
    SET = "set"
    #: Send a cookie that removes the client's one.
    DELETE = "delete"


# Looking a member up on an Enum class runs Python code (about 0.1 µs);
# every response of a used session decides, so the policy returns these.
NOTHING, SET, DELETE = CookieAction.NOTHING, CookieAction.SET, CookieAction.DELETE

#: A status is a server error (5xx) from this one up, compared as text: for
#: the three digits a status begins with (PEP 3333), the order of their
#: number, without ``int(status[:3])`` (about 1.9K instructions a save) or
#: its ValueError for a status that does not begin so, which is the server's
#: to judge.
SERVER_ERRORS_FROM = "500"


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


#: ``SessionState`` from a tuple of all five, without the Python-level
#: ``__new__`` (every response of a used session makes one).
new_session_state = functools.partial(tuple.__new__, SessionState)


def is_touched(accessed: bool, modified: bool, settings: Settings) -> bool:
    """Whether a response must look at the session at all (else: headers as they are).

    ``handling.handle`` spells this out for the untouched request's path.
    """
    return accessed or modified or settings.save_every_request


def decide(state: SessionState, settings: Settings, status: str) -> CookieAction:
    """The cookie policy: set, delete or leave the session cookie on this response.

    An emptied session deletes the cookie the client sent; a non-empty
    session that changed (or any, with ``save_every_request``, or one due
    for ``reissue_time``) is saved and its cookie sent, unless the response
    is a server error (5xx) and ``save_on_error`` is off.
    """
    accessed, modified, empty, had_cookie, reissue_due = state
    return decide_for(
        accessed, modified, empty, had_cookie, reissue_due, settings, status
    )


def decide_for(
    accessed: bool,
    modified: bool,
    empty: bool,
    had_cookie: bool,
    reissue_due: bool,
    settings: Settings,
    status: str,
) -> CookieAction:
    """:func:`decide` on the five parts of a :class:`SessionState`, given one
    by one: every response of a used session asks (see
    ``Session._cookie_action()``), and making the
    named tuple, then reading its fields, cost each about 2K instructions."""
    if not accessed:
        return NOTHING
    if empty:
        return DELETE if had_cookie else NOTHING
    if not (modified or settings.save_every_request or reissue_due):
        return NOTHING
    if status >= SERVER_ERRORS_FROM and not settings.save_on_error:
        return NOTHING
    return SET


def fixed_secure(settings: Settings) -> bool | None:
    """The cookie's ``Secure`` flag under ``settings``; None when it depends on
    the request's scheme (``cookie_secure = auto``: set on https only)."""
    if settings.cookie_samesite == "None" or settings.cookie_partitioned:
        return True
    if settings.cookie_secure == "auto":
        return None
    return bool(settings.cookie_secure)


# The last Expires date formatted, as (Unix second, HTTP date): every cookie
# saved within one second with the same age shares it. A true pair from the
# start: a first cookie ending at second 0 had an empty date.
_last_expires: tuple[int, str] = (0, http_date(0))


def expires_at_date(moment: int) -> str:
    """The ``Expires`` attribute for the Unix second ``moment``."""
    global _last_expires
    cached_moment, text = _last_expires
    if moment != cached_moment:
        text = http_date(moment)
        _last_expires = (moment, text)
    return text


def cookie_attributes(settings: Settings, secure: bool) -> dict[str, Any]:
    """The session cookie's attributes, as :func:`dump_cookie` keywords."""
    return {
        "path": settings.cookie_path,
        "domain": settings.cookie_domain,
        "secure": secure,
        "httponly": settings.cookie_httponly,
        "samesite": settings.cookie_samesite or None,
        "partitioned": settings.cookie_partitioned,
        "max_size": 0,
    }


# The last header made, with what it was made of: a session saved again
# within the same second sends the same one.
_last_cookie: tuple[tuple[Any, ...], tuple[str, str] | None] = ((), None)


def session_cookie(
    settings: Settings,
    value: str,
    max_age: int | None,
    secure: bool,
    now: float | None = None,
    template: CookieTemplate | None = None,
) -> tuple[str, str]:
    """The ``Set-Cookie`` header carrying ``value``; no ``Max-Age`` means browser close.

    ``Expires`` is ``max_age`` after ``now``, the time of the save the
    cookie follows if the caller has it (else the clock's). ``template``
    is :func:`cookie_template` of ``settings`` and ``secure``, if the caller
    holds it. Raises :class:`SessionCookieTooLarge` if browsers would drop it.
    """
    global _last_cookie, _last_tail
    if max_age is None:
        expires = None
    else:
        expires = int(clock.now() if now is None else now) + max_age
    made_of = (settings, secure, value, max_age, expires)
    last_made_of, last_cookie = _last_cookie  # one read: threads replace it
    if made_of == last_made_of:
        return last_cookie  # type: ignore[return-value]
    if template is None:
        template = cookie_template(settings, secure)
    if (  # werkzeug sends the value as it is: every character in _UNQUOTED
        template is None
        or not value.isascii()
        or value.encode("ascii").translate(None, _UNQUOTED)
    ):
        header = _dumped(settings, value, max_age, expires, secure)
    elif expires is None:  # a browser-session cookie
        header = f"{template.head}{value}{template.session_tail}"
    else:
        tail_made_of, tail = _last_tail  # one read: see below
        if tail_made_of != (template, max_age, expires):
            tail = template.tail(max_age, expires)  # type: ignore[arg-type]
            _last_tail = ((template, max_age, expires), tail)
        header = f"{template.head}{value}{tail}"
    size = len(header)  # its latin-1 bytes: one per character
    if size > COOKIE_SIZE_LIMIT:
        raise SessionCookieTooLarge(size, COOKIE_SIZE_LIMIT)
    cookie = ("Set-Cookie", header)
    _last_cookie = (made_of, cookie)
    return cookie


def _dumped(
    settings: Settings,
    value: str,
    max_age: int | None,
    expires: int | None,
    secure: bool,
) -> str:
    """The header carrying ``value`` as :func:`dump_cookie` makes it (a value
    that needs quoting, or settings whose headers no template can cut)."""
    return dump_cookie(
        settings.cookie_name,
        value,
        max_age=max_age,
        expires=None if expires is None else expires_at_date(expires),
        **cookie_attributes(settings, secure),
    )


# werkzeug's rule: a value of these characters only is sent unquoted. A
# session cookie's value is checked by deleting them (none may be left): a
# regular expression's search of a new session's 43-character id cost each
# new session about 1.5K instructions more.
_UNQUOTED = (
    string.ascii_letters + string.digits + "_!#$%&'()*+-./:<=>?@[]^`{|}~"
).encode()


# Placeholders in the headers dump_cookie makes for a template.
_VALUE_MARK = "wsgisessionvaluemark"
_EXPIRES_MARK = "wsgisessionexpiresmark"
_AGE_MARK = 7_777_777_777_777_777


class CookieTemplate(NamedTuple):
    """The ``Set-Cookie`` headers of one settings object, cut where values go.

    Made once by :func:`dump_cookie` with placeholders, so a header is one
    string join, formatted exactly as :func:`dump_cookie` would.
    """

    #: "name=", then the value; then what follows it for a lasting cookie,
    #: with the Expires date and the Max-Age in between.
    head: str
    before_expires: str
    before_age: str
    after_age: str
    #: What follows the value for a browser-session cookie (no Max-Age).
    session_tail: str
    #: The whole header that deletes the cookie.
    deleting: str

    def tail(self, max_age: int, expires: int) -> str:
        """What follows the value of a lasting cookie that ends at the Unix
        second ``expires``."""
        return (
            f"{self.before_expires}{expires_at_date(expires)}"
            f"{self.before_age}{max_age}{self.after_age}"
        )


# The text after the value of the last lasting cookie made from a template,
# with the template, Max-Age and end: the cookies of one template with the
# same Max-Age saved within one second share it (threads replace it whole).
_last_tail: tuple[tuple[Any, ...], str] = ((), "")


def _cut(header: str, *marks: str) -> list[str] | None:
    """``header`` split at each mark, in order; None if a mark is not there exactly once."""
    pieces = []
    for mark in marks:
        if header.count(mark) != 1:
            return None
        piece, _, header = header.partition(mark)
        pieces.append(piece)
    return [*pieces, header]


def make_template(settings: Settings, secure: bool) -> CookieTemplate | None:
    """The template of ``settings``; None if its headers cannot be cut safely."""
    attributes = cookie_attributes(settings, secure)
    name = settings.cookie_name
    lasting = dump_cookie(
        name, _VALUE_MARK, max_age=_AGE_MARK, expires=_EXPIRES_MARK, **attributes
    )
    lasting_cut = _cut(lasting, _VALUE_MARK, _EXPIRES_MARK, str(_AGE_MARK))
    session_cut = _cut(dump_cookie(name, _VALUE_MARK, **attributes), _VALUE_MARK)
    if lasting_cut is None or session_cut is None or lasting_cut[0] != session_cut[0]:
        return None
    head, before_expires, before_age, after_age = lasting_cut
    deleting = _deleting(settings, secure)
    return CookieTemplate(
        head, before_expires, before_age, after_age, session_cut[1], deleting
    )


# Templates by settings object and secure flag; each entry holds its
# settings, so that the id cannot be reused while the entry lives.
_templates: dict[tuple[int, bool], tuple[Settings, CookieTemplate | None]] = {}
_MAX_TEMPLATES = 64


def cookie_template(settings: Settings, secure: bool) -> CookieTemplate | None:
    """The cached template of ``settings`` (made on first use)."""
    cache_key = (id(settings), secure)
    entry = _templates.get(cache_key)
    if entry is None or entry[0] is not settings:
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.clear()
        entry = _templates[cache_key] = (settings, make_template(settings, secure))
    return entry[1]


# More than the fixed attributes can take: Expires, Max-Age, Secure,
# HttpOnly, SameSite=Strict, Partitioned and their separators.
_FIXED_ATTRIBUTES = 200


def check_cookie_size(
    settings: Settings, value: str, max_age: Callable[[], int | None]
) -> None:
    """Raise :class:`SessionCookieTooLarge` if the cookie carrying ``value`` would be.

    The header (and ``max_age()``, its ``Max-Age``) is only made when a
    bound on its size says it might be too large. It has ``Secure`` when
    the settings give it, and with ``cookie_secure = auto`` (the scheme of
    the request is not known here).
    """
    bound = len(value) + len(settings.cookie_name) + _FIXED_ATTRIBUTES
    bound += len(settings.cookie_domain or "") + len(settings.cookie_path)
    if bound > COOKIE_SIZE_LIMIT:
        secure = fixed_secure(settings) is not False
        session_cookie(settings, value, max_age(), secure=secure)


def deleting_cookie(settings: Settings, secure: bool) -> tuple[str, str]:
    """A ``Set-Cookie`` that removes the session cookie: same Domain, Path, SameSite."""
    template = cookie_template(settings, secure)
    header = _deleting(settings, secure) if template is None else template.deleting
    return ("Set-Cookie", header)


def _deleting(settings: Settings, secure: bool) -> str:
    """The header that removes the cookie: expired, its attributes but HttpOnly."""
    attributes = cookie_attributes(settings, secure) | {"httponly": False}
    return dump_cookie(settings.cookie_name, "", max_age=0, expires=0, **attributes)
