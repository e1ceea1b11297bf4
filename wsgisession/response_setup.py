"""What every response of one middleware shares, bound once per settings."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .cache_headers import session_headers
from .cleanup import Sweeper
from .config import Settings
from .cookies import (
    CookieTemplate,
    check_cookie_size,
    cookie_template,
    fixed_secure,
)
from .errors import SessionCookieTooLarge
from .logthrottle import ThrottledWarning
from .session import Session
from .stores.base import Store

__all__ = ["ResponseSetup", "SessionFactory"]

# The warnings of the response path are the response module's.
logger = logging.getLogger("wsgisession.response")

#: The middleware's session class, called bare (see ``session_factory.for_request``).
SessionFactory = Callable[[], Session]


#: The longest session key :func:`cookie_may_not_fit` allows for.
_LONGEST_KEY = 256


def cookie_may_not_fit(settings: Settings) -> bool:
    """Whether a server-side store's cookie could be too large with these
    settings (a key of up to 256 characters): then each save checks its
    size before the store writes, not only as the response makes it."""
    try:
        check_cookie_size(settings, "k" * _LONGEST_KEY, lambda: 2**31)
    except SessionCookieTooLarge:
        return True
    return False


class ResponseSetup:
    """What every response of one middleware shares, bound once.

    A class with slots rather than a named tuple: every response reads its
    fields, and CPython reads a slot faster than a tuple's named field.
    """

    __slots__ = (
        "cookie_mark",
        "cookie_name",
        "environ_key",
        "lock",
        "new_session",
        "private",
        "save_every_request",
        "saves_unchanged",
        "secure",
        "session_headers",
        "settings",
        "size_first",
        "store",
        "sweeper",
        "template",
        "warn_interrupted",
        "warn_late_change",
    )

    template: CookieTemplate | None

    def __init__(
        self,
        settings: Settings,
        store: Store,
        new_session: SessionFactory,
        sweeper: Sweeper | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.new_session = new_session
        #: The late save reads the request's cookies of this name again.
        self.cookie_name = settings.cookie_name
        self.environ_key = settings.environ_key
        #: Set in each request's environ to ``environ_key``: an inner
        #: middleware of the same cookie name finds the session by it.
        self.cookie_mark = f"wsgisession.cookie:{settings.cookie_name}"
        self.save_every_request = settings.save_every_request
        #: Whether a session left unchanged may be saved (``save_every_request``
        #: or ``reissue_time``): else its response sets no cookie.
        self.saves_unchanged = (
            settings.save_every_request or settings.reissue_time is not None
        )
        self.lock = settings.lock
        #: ``private_responses``: a response that sets or deletes the cookie
        #: says ``Cache-Control: private``.
        self.private = private = settings.private_responses
        #: What a response that sets the cookie adds to headers with neither
        #: ``Vary`` nor ``Cache-Control`` (see ``handling``).
        self.session_headers = session_headers(private)
        #: The cookie's ``Secure`` flag, or None when the request's scheme says.
        self.secure = secure = fixed_secure(settings)
        #: The cookie's template when ``secure`` is fixed (else None: looked up).
        self.template = None if secure is None else cookie_template(settings, secure)
        #: Whether each save checks the cookie's size before it writes (a
        #: server-side store's record the response could not name).
        self.size_first = not store.client_side and cookie_may_not_fit(settings)
        #: Runs the store's bounded cleanup now and then after a save (or None).
        self.sweeper = sweeper
        #: A client can make a save meet a deleted session at will (a logout
        #: racing a slow request): a WARNING at most once a minute.
        self.warn_interrupted = ThrottledWarning(logger)
        #: A change after the headers went out that no cookie can carry: a
        #: cookie-less client meets it on every request to such a page.
        self.warn_late_change = ThrottledWarning(logger)

    def __repr__(self) -> str:
        return f"<ResponseSetup store={self.store!r}>"
