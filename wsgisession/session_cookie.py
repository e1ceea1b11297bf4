"""How the cookie policy (:mod:`wsgisession.cookies`) sees a session, as a
mixin of :class:`~wsgisession.session.Session`: what each response asks."""

from __future__ import annotations

from typing import Any, Protocol

from .config import Settings
from .cookies import (
    DELETE,
    NOTHING,
    SERVER_ERRORS_FROM,
    SET,
    CookieAction,
    SessionState,
    new_session_state,
)
from .session_record import SessionRecord

__all__ = ["AskingResponse", "CookiePolicyMethods"]


class AskingResponse(Protocol):
    """What the policy reads of the response that asks (a
    :class:`~wsgisession.response.Response`)."""

    @property
    def had_cookie(self) -> bool:
        """Whether the request came with a session cookie the response may delete."""


class CookiePolicyMethods:
    """The session's state for the cookie, and the policy's answer."""

    # The session's own (see :class:`~wsgisession.session.Session`).
    accessed: bool
    modified: bool
    _saved_by_app: bool
    _record: SessionRecord | None
    _data: dict[str, Any] | None

    def loaded_record(self) -> SessionRecord:
        """The session's record, loaded (the session provides it)."""
        raise NotImplementedError

    def cookie_state(self, had_cookie: bool) -> SessionState:
        """The session as the cookie policy sees it (loads it); a response
        asks ``_cookie_action()``, which makes none."""
        record = self.loaded_record()
        modified = self.modified or self._saved_by_app
        empty = record.key is None and not self._data
        due = record.settings.reissue_time is not None and record.reissue_due()
        return new_session_state((True, modified, empty, had_cookie, due))

    def _cookie_action(
        self, response: AskingResponse, settings: Settings, status: str
    ) -> CookieAction:
        """What the cookie policy says for this session on ``response`` of
        ``status`` (loads it): :func:`~wsgisession.cookies.decide_for` on
        :meth:`cookie_state`, spelled out (every response of a used session
        asks), so that the response's ``had_cookie`` is read only for an
        empty session, the one case that needs it."""
        self.accessed = True  # loaded_record(), spelled out
        record = self._record
        if self._data is None or record is None:
            record = self.loaded_record()
        if record.key is None and not self._data:
            return DELETE if response.had_cookie else NOTHING
        if not (
            self.modified
            or self._saved_by_app
            or settings.save_every_request
            or (record.settings.reissue_time is not None and record.reissue_due())
        ):
            return NOTHING
        if status >= SERVER_ERRORS_FROM and not settings.save_on_error:
            return NOTHING
        return SET

    def reissue_due(self) -> bool:
        """Whether ``reissue_time`` says to re-save this stored session now: its
        last save is that old, or ahead of the clock (set back since, or a
        host whose clock is ahead saved it)."""
        record = self._record
        return record is not None and record.reissue_due()
