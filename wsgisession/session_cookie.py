"""How the cookie policy (:mod:`wsgisession.cookies`) sees a session, as a
mixin of :class:`~wsgisession.session.Session`: what each response asks."""

from __future__ import annotations

from typing import Any

from .config import Settings
from .cookies import CookieAction, SessionState, decide_for, new_session_state
from .session_record import SessionRecord

__all__ = ["CookiePolicyMethods"]


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
        self, had_cookie: bool, settings: Settings, status: str
    ) -> CookieAction:
        """What the cookie policy says for this session on a response of
        ``status`` (loads it): :func:`~wsgisession.cookies.decide` on
        :meth:`cookie_state`, with no :class:`SessionState` made, or read
        field by field (every response of a used session asks)."""
        self.accessed = True  # loaded_record(), spelled out
        record = self._record
        if self._data is None or record is None:
            record = self.loaded_record()
        return decide_for(
            True,
            self.modified or self._saved_by_app,
            record.key is None and not self._data,
            had_cookie,
            # reissue_due() when there is a reissue_time (no call otherwise)
            record.settings.reissue_time is not None and record.reissue_due(),
            settings,
            status,
        )

    def reissue_due(self) -> bool:
        """Whether ``reissue_time`` says to re-save this stored session now: its
        last save is that old, or ahead of the clock (set back since, or a
        host whose clock is ahead saved it)."""
        record = self._record
        return record is not None and record.reissue_due()
