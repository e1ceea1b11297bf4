"""The parts of Django's session API that only read a session: its expiry,
the test cookie and ``has_key()``, as mixins of
:class:`~wsgisession.session.Session`.

They use the session's public methods only (the record it loaded, the
mapping), so that ``session.py`` keeps what changes a session.
"""

from __future__ import annotations

import datetime
from collections.abc import MutableMapping
from typing import Any, TypedDict

from . import clock
from . import expiry as rules
from .config import Settings
from .session_record import SessionRecord

__all__ = [
    "TEST_COOKIE_NAME",
    "TEST_COOKIE_VALUE",
    "ExpiryMethods",
    "ExpiryQuery",
    "HasKeyMethod",
    "TestCookieMethods",
]

TEST_COOKIE_NAME = "testcookie"
TEST_COOKIE_VALUE = "worked"

_UNSET: Any = object()


class ExpiryQuery(TypedDict, total=False):
    """The keyword arguments of ``get_expiry_age()`` and ``get_expiry_date()``,
    typed for the framework sessions that pass them on (``**kwargs``)."""

    modification: datetime.datetime | None
    expiry: rules.ExpiryArgument


class ExpiryMethods:
    """Django's ``get_expiry_*`` methods and the cookie's ``Max-Age``."""

    #: The session's options (see :class:`~wsgisession.session.Session`).
    _settings: Settings

    def loaded_record(self) -> SessionRecord:
        """The session's record, loaded (the session provides it)."""
        raise NotImplementedError

    @property
    def created(self) -> float:
        """When the session was first saved, as a Unix time (now, for a new one)."""
        return self.loaded_record().created

    def get_session_cookie_age(self) -> int:
        """The default expiry in seconds (the ``cookie_age`` option)."""
        return self._settings.cookie_age

    def get_expiry_age(
        self,
        *,
        modification: datetime.datetime | None = None,
        expiry: rules.ExpiryArgument = _UNSET,
    ) -> int:
        """Seconds from ``modification`` (default: now) until the session expires.

        ``expiry`` asks about another setting: any value ``set_expiry()``
        takes (a timedelta counts from ``modification``). The session ends
        at its ``absolute_timeout`` at the latest, whatever the setting.
        """
        expiry = self._expiry_asked(modification, expiry)
        moment = rules.utcnow() if modification is None else modification
        age = rules.expiry_age(expiry, moment, self.get_session_cookie_age())
        return rules.cut_age(age, moment, self._absolute_end())

    def get_expiry_date(
        self,
        *,
        modification: datetime.datetime | None = None,
        expiry: rules.ExpiryArgument = _UNSET,
    ) -> datetime.datetime:
        """The moment (aware, UTC) the session expires if saved at ``modification``
        (its ``absolute_timeout`` at the latest)."""
        expiry = self._expiry_asked(modification, expiry)
        moment = rules.utcnow() if modification is None else modification
        date = rules.expiry_date(expiry, moment, self.get_session_cookie_age())
        return rules.cut_date(date, self._absolute_end())

    def _expiry_asked(self, modification: object, expiry: Any) -> Any:
        """The expiry the getters answer for: the session's, or ``expiry``
        checked as ``set_expiry()`` checks it (TypeError, ValueError), so a
        bad argument fails the same way in all three."""
        if modification is not None and not isinstance(modification, datetime.datetime):
            raise TypeError(
                f"modification must be a datetime, not {type(modification).__name__}"
            )
        if expiry is _UNSET:
            return self.loaded_record().expiry
        try:
            rules.encode_expiry(expiry)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"unusable expiry {expiry!r}: {exc}") from None
        return expiry

    def _absolute_end(self) -> datetime.datetime | None:
        """When ``absolute_timeout`` ends the session (None: no such limit;
        the session is loaded only if there is one, for its creation time)."""
        timeout = self._settings.absolute_timeout
        if timeout is None:
            return None
        created = self.loaded_record().created
        return datetime.datetime.fromtimestamp(created + timeout, rules.UTC)

    def get_expire_at_browser_close(self) -> bool:
        """Whether the cookie should last only until the browser closes."""
        return self.loaded_record().browser_session()

    def cookie_max_age(self, *, as_saved: bool = False) -> int | None:
        """The cookie's ``Max-Age``: None for browser close, capped by ``absolute_timeout``.

        ``as_saved``: the one the record's last save gave it, for the
        response of that save (no clock read; the cookie ends with the record).
        """
        record = self.loaded_record()
        if as_saved:
            return record.max_age_at_save
        if record.browser_session():
            return None
        return int(record.seconds_left(clock.now()))


class TestCookieMethods(MutableMapping[str, Any]):
    """Django's test cookie: whether the browser sends cookies back.

    The marker's key and value are class attributes, as on Django's
    ``SessionBase``, so code ported from Django can name them
    (``session.TEST_COOKIE_NAME``).
    """

    TEST_COOKIE_NAME = TEST_COOKIE_NAME
    TEST_COOKIE_VALUE = TEST_COOKIE_VALUE

    def set_test_cookie(self) -> None:
        """Store a marker to check, on the next request, that cookies work."""
        self[self.TEST_COOKIE_NAME] = self.TEST_COOKIE_VALUE

    def test_cookie_worked(self) -> bool:
        """Whether the marker of :meth:`set_test_cookie` came back."""
        return bool(self.get(self.TEST_COOKIE_NAME) == self.TEST_COOKIE_VALUE)

    def delete_test_cookie(self) -> None:
        """Remove the marker; KeyError if it is absent."""
        del self[self.TEST_COOKIE_NAME]


class HasKeyMethod(MutableMapping[str, Any]):
    """Django's ``has_key()``: its sessions still have it (Django 5.2, with
    an async ``ahas_key()``), so code ported from Django may call it."""

    def has_key(self, key: object) -> bool:
        """Whether the session holds ``key``, as ``key in session`` (loads it)."""
        return key in self
