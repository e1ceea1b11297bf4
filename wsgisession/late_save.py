"""The save of a response whose headers went out before its body ended.

A streamed body (or the app's ``write()``) sends the headers first; what
the app changes after that is saved when the body ends or the server
closes it, as long as the cookie the client already holds names the
session. A new session, a key changed after the headers went out
(``cycle_key()``) or the signed cookie store cannot carry the change (nor
a ``flush()``, which only a deleting cookie could carry there): it is
logged instead.
"""

from __future__ import annotations

from typing import Protocol

from .cookie_header import cookie_values
from .cookies import DELETE, SET
from .response_setup import ResponseSetup
from .session import Session

__all__ = ["LateSaving", "save_late"]


class LateSaving(Protocol):
    """What the late save needs of its response (a
    :class:`~wsgisession.response.Response`)."""

    setup: ResponseSetup
    session: Session
    #: The request's ``Cookie`` header (None: none).
    cookie_header: str | None
    status: str | None
    saved: bool
    failed: bool
    #: The key of the ``Set-Cookie`` the response sent, ``""`` for one that
    #: deletes the cookie (unset: none).
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
    wanted = session._cookie_action(response, response.setup.settings, response.status)
    client_side = response.setup.store.client_side
    if wanted is DELETE and client_side and _client_keeps_a_session(response):
        # flush(): only a deleting cookie could end it, and none went out
        _warn_lost(response, "cookie store (flush(): the client keeps its cookie)")
        return
    if wanted is not SET:
        return
    if response.saved and not session.has_unsaved_changes():
        return
    key = session.loaded_record().key  # reserved for a new one if its cookie went out
    if client_side or key is None or not _client_holds(response, key):
        kind = "new session" if key is None else "new key (cycle_key())"
        _warn_lost(response, "cookie store" if client_side else kind)
        return
    try:
        response.save()
    except BaseException:
        response.failed = True  # close() must not try the store again
        raise


def _warn_lost(response: LateSaving, kind: str) -> None:
    """Log that the change made after the headers went out was dropped."""
    response.setup.warn_late_change(
        "session changed after the response headers were sent; a %s cannot carry "
        "the change, so it was not saved",
        kind,
    )
    response.failed = True  # close() must not try (and warn) again


def _client_keeps_a_session(response: LateSaving) -> bool:
    """Whether the client holds a cookie that names a live session: the one
    the headers sent, or else one the request offered that loaded (not an
    expired or rejected one, which ends no session if left alone)."""
    sent: str | None = getattr(response, "sent_key", None)
    if sent is not None:
        return sent != ""
    return response.session._offered_key_loaded


def _client_holds(response: LateSaving, key: str) -> bool:
    """Whether ``key`` is the one the headers sent, or else one the request offered."""
    sent, header = getattr(response, "sent_key", None), response.cookie_header
    if sent is not None or header is None:
        return key == sent
    return key in cookie_values(header, response.setup.cookie_name)
