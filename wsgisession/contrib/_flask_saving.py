"""What :class:`~wsgisession.contrib.flask.WsgiSessionInterface` does to a
request's session as Flask saves it: Flask's rule for a session emptied by
the app, and ``SESSION_REFRESH_EACH_REQUEST``'s re-save of a permanent one."""

from __future__ import annotations

import logging

from ..errors import LockTimeout, SessionInterrupted, StoreUnavailable
from ..idle_loads import load_unless_locked
from ..session import Session

__all__ = ["drop_if_emptied", "refresh_if_permanent"]

logger = logging.getLogger("wsgisession.contrib.flask")  # the module users know it by


def drop_if_emptied(session: Session) -> None:
    """Flask's rule: a session modified to be empty loses its cookie.

    The emptying is saved first, merged with what other requests of the
    browser saved meanwhile: if they stored data, the session is not empty
    and keeps its cookie. If it is, the cookie goes but the emptied record
    stays (until it expires), so that a request still running on it (another
    tab's ``flash()``) merges its changes in and sends the cookie again; a
    deleted record would make it drop them, as after a logout (``flush()``).
    A session deleted or moved meanwhile is left to the response's save,
    which drops the changes as for any request (a page's subrequest leaves
    the cookie alone: a parallel login may have sent a new one).
    A session bound to a user is not empty: it is a login (``bind_user()``
    with no data, or its last value removed), listed in the user's sessions.
    """
    if not (
        session.modified
        and not len(session)
        and session.session_key is not None
        and session.user_id is None
    ):
        return
    try:
        session.save()
    except SessionInterrupted:  # deleted or moved meanwhile (a logout, a login)
        return  # the response's save drops it: a navigation deletes the cookie
    if not len(session):
        session.loaded_record().forget()  # no key: the response deletes the cookie


def refresh_if_permanent(session: Session, *, keep_accessed: bool) -> None:
    """``SESSION_REFRESH_EACH_REQUEST``: mark a permanent session modified
    (one with data, or bound to a user).

    Loading the session to find out is not a use of it by the app: unless
    the session is to be saved, ``accessed`` is put back, so that the
    response gets no ``Vary: Cookie`` (as with Flask). With ``lock = true``
    it stays set, so that the middleware releases the lock the load took.
    A load that fails (the store down, ``LockTimeout``) skips the refresh:
    the response of a page that never used the session goes out as the app
    made it, with the cookie left alone. Such a page tries the lock once
    (see .idle_loads): it does not wait for a request that holds it.
    """
    if session.modified or session._load_failed:  # failed: not loaded again here
        return
    accessed = session.accessed
    try:
        if not load_unless_locked(session):  # held: the holder refreshes it
            return
        held = len(session) or session.user_id is not None  # a login without data
        permanent = held and not session.get_expire_at_browser_close()
    except (StoreUnavailable, LockTimeout) as exc:
        session.accessed = accessed
        logger.debug("session not refreshed: %s", exc)
        return
    if permanent:
        session.modified = True  # saved again: a new expiry, the cookie re-sent
    elif not keep_accessed:
        session.accessed = accessed
