"""The save of a response whose headers went out before its body ended.

A streamed body (or the app's ``write()``) sends the headers first; what
the app changes after that is saved when the body ends or the server
closes it, as long as the cookie the client already holds names the
session. A new session, a key changed after the headers went out
(``cycle_key()``) or the signed cookie store cannot carry the change: it
is logged instead.
"""

from __future__ import annotations

from typing import Protocol

from .cookie_header import cookie_values
from .cookies import SET, decide
from .offered_keys import OfferedKeys
from .response_setup import ResponseSetup
from .session import Session

__all__ = ["LateSaving", "save_late"]


class LateSaving(Protocol):
    """What the late save needs of its response (a
    :class:`~wsgisession.response.Response`)."""

    setup: ResponseSetup
    session: Session
    offered: OfferedKeys | None
    status: str | None
    saved: bool
    failed: bool
    #: The key of the ``Set-Cookie`` the response sent (unset: none).
    sent_key: str

    @property
    def had_cookie(self) -> bool: ...

    def save(self, watch: bool = True) -> bool: ...


def save_late(response: LateSaving) -> None:
    """Save what changed after the headers went out (streamed bodies, ``close()``)."""
    session = response.session
    if response.failed or not (
        session.accessed or session.modified or session.detect_changes()
    ):
        return
    if session._data is None:
        if session._load_failed:
            return
        session.load()
    session.detect_changes()
    assert response.status is not None
    wanted = decide(
        session.cookie_state(response.had_cookie),
        response.setup.settings,
        response.status,
    )
    if wanted is not SET:
        return
    if response.saved and not session.has_unsaved_changes():
        return
    client_side = response.setup.store.client_side
    key = session.loaded_record().key  # reserved for a new one if its cookie went out
    if client_side or key is None or not _client_holds(response, key):
        kind = "new session" if key is None else "new key (cycle_key())"
        response.setup.warn_late_change(
            "session changed after the response headers were sent; a %s cannot carry "
            "the change, so it was not saved",
            "cookie store" if client_side else kind,
        )
        response.failed = True  # close() must not try (and warn) again
        return
    try:
        response.save()
    except BaseException:
        response.failed = True  # close() must not try the store again
        raise


def _client_holds(response: LateSaving, key: str) -> bool:
    """Whether ``key`` is the one the headers sent, or else one the request offered."""
    sent, offered = getattr(response, "sent_key", None), response.offered
    if sent is not None or offered is None:
        return key == sent
    return key in cookie_values(offered.header, offered.name)
