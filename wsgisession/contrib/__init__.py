"""Framework adapters: Flask (:mod:`.flask`) and Pyramid (:mod:`.pyramid`).

Both give the framework a thin view of the request's
:class:`~wsgisession.Session` (the one :class:`~wsgisession.SessionMiddleware`
put in the environ), so that the middleware stays the only thing that loads,
saves and sets the cookie. :class:`SessionProxy` is that shared view: the
mapping API and Django's session methods, passed straight through. Bottle and
plain WSGI apps need no adapter: they read ``environ["wsgisession"]``.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import (
    ItemsView,
    Iterator,
    KeysView,
    MutableMapping,
    ValuesView,
)
from typing import Any, Unpack

from ..expiry import ExpiryArgument
from ..session import Session
from ..session_expiry import ExpiryQuery
from ..session_writes import UpdateSource

__all__ = ["SessionProxy"]

_MISSING: Any = object()


class SessionProxy(MutableMapping[str, Any]):
    """A mapping view of a :class:`~wsgisession.Session` for a framework's API.

    Every read and write goes to the wrapped session (``.wsgisession``), so
    ``environ["wsgisession"]`` and the framework's session object are always
    the same data. Framework adapters subclass it and add their attributes.
    """

    #: The test cookie's marker, as on Django's sessions (``session.TEST_COOKIE_NAME``).
    TEST_COOKIE_NAME = Session.TEST_COOKIE_NAME
    TEST_COOKIE_VALUE = Session.TEST_COOKIE_VALUE

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def wsgisession(self) -> Session:
        """The wrapped session, for the parts of its API not passed through."""
        return self._session

    def __copy__(self) -> dict[str, Any]:
        """A snapshot of the data (a plain dict), as copying a framework's own
        dict-like session gives; a second proxy would alias the session."""
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)

    # -- mapping -----------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._session[key] = value

    def __delitem__(self, key: str) -> None:
        del self._session[key]

    def __contains__(self, key: object) -> bool:
        return key in self._session

    def __iter__(self) -> Iterator[str]:
        return iter(self._session)

    def __len__(self) -> int:
        return len(self._session)

    def get(self, key: str, default: Any = None) -> Any:
        return self._session.get(key, default)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if default is _MISSING:
            return self._session.pop(key)
        return self._session.pop(key, default)

    def popitem(self) -> tuple[str, Any]:
        return self._session.popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._session.setdefault(key, default)

    def update(self, other: UpdateSource = (), /, **kwargs: Any) -> None:
        self._session.update(other, **kwargs)

    def clear(self) -> None:
        self._session.clear()

    def keys(self) -> KeysView[str]:
        return self._session.keys()

    def values(self) -> ValuesView[Any]:
        return self._session.values()

    def items(self) -> ItemsView[str, Any]:
        return self._session.items()

    # -- Django's session API ------------------------------------------------

    @property
    def session_key(self) -> str | None:
        """The session's id, or None until it is first saved."""
        return self._session.session_key

    @property
    def new(self) -> bool:
        """True while the session has no stored record (loads it to find out).

        That is: the request brought no live session and none has been
        saved yet; after a login's :meth:`cycle_key` it is False.
        """
        self._session.load()
        return self._session.session_key is None

    def flush(self) -> None:
        """Empty the session, delete its record and drop its key (logout)."""
        self._session.flush()

    def cycle_key(self) -> None:
        """Move the data to a new key and delete the old record (login)."""
        self._session.cycle_key()

    def set_expiry(self, value: ExpiryArgument) -> None:
        """Seconds of inactivity, 0 for browser close, a moment, or None (default)."""
        self._session.set_expiry(value)

    def get_expiry_age(self, **kwargs: Unpack[ExpiryQuery]) -> int:
        """Seconds from ``modification`` (default: now) until the session
        expires; ``expiry=`` asks about another setting, as in Django."""
        return self._session.get_expiry_age(**kwargs)

    def get_expiry_date(self, **kwargs: Unpack[ExpiryQuery]) -> datetime.datetime:
        """The moment (aware, UTC) the session expires if saved at
        ``modification`` (default: now); ``expiry=`` as for get_expiry_age."""
        return self._session.get_expiry_date(**kwargs)

    def get_expire_at_browser_close(self) -> bool:
        """Whether the cookie lasts only until the browser closes."""
        return self._session.get_expire_at_browser_close()

    def get_session_cookie_age(self) -> int:
        """The default expiry in seconds (the ``cookie_age`` option)."""
        return self._session.get_session_cookie_age()

    def set_test_cookie(self) -> None:
        """Store a marker to check, on the next request, that cookies work."""
        self._session.set_test_cookie()

    def test_cookie_worked(self) -> bool:
        """Whether the marker of :meth:`set_test_cookie` came back."""
        return self._session.test_cookie_worked()

    def delete_test_cookie(self) -> None:
        """Remove the marker; KeyError if it is absent."""
        self._session.delete_test_cookie()

    # -- the user the session belongs to -------------------------------------

    def bind_user(self, user_id: str | int) -> None:
        """Make the session ``user_id``'s and cycle its key at once (login)."""
        self._session.bind_user(user_id)

    @property
    def user_id(self) -> str | None:
        """The user the session belongs to, or None."""
        return self._session.user_id

    @property
    def handle(self) -> str | None:
        """The session's opaque name in its user's listings, or None until saved."""
        return self._session.handle

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._session!r}>"
