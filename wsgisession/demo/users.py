"""The tour's user sessions: log in under a name, list that user's sessions, revoke.

The actions call the API an app would: ``session.bind_user()`` at login
(with the browser's User-Agent stored in the session, as the docs' "your
devices" recipe does), ``middleware.user_sessions()``,
``revoke_user_session()`` and ``revoke_user_sessions(keep=session)``.
:func:`gather` reads what the section's panel shows (see :mod:`.userpage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .steps import Action, Context

if TYPE_CHECKING:
    from ..session import Session
    from ..usersessions import UserSession

__all__ = ["ACTIONS", "MAX_NAME", "UserFacts", "gather", "short_handle"]

#: The longest name the login form takes, and the User-Agent kept of a browser.
MAX_NAME = 40
MAX_AGENT = 200
#: How many characters of a handle the page shows.
SHOWN_HANDLE = 8


@dataclass(frozen=True)
class UserFacts:
    """What the panel shows: why it is unavailable, or the user and their sessions."""

    unavailable: str = ""  # the reason, on a store without user sessions
    user_id: str | None = None
    this_handle: str | None = None
    sessions: tuple[UserSession, ...] = ()
    now: float = 0.0


def short_handle(handle: str) -> str:
    """The first characters of a handle, enough to tell sessions apart."""
    return handle[:SHOWN_HANDLE] + "…"


def unavailable(context: Context) -> str:
    """Why this store cannot list or revoke a user's sessions; "" if it can."""
    if context.client_side:
        return (
            "Not available on the cookie store: the whole session lives in your "
            "browser's cookie and the server keeps nothing, so there is no list of "
            "a user's sessions and no record to delete; a copied cookie stays "
            "valid until it expires. Run the demo with a server-side store "
            "(--store sqlite, the default) to try it."
        )
    store = context.middleware.store
    if not store.supports_user_sessions:
        return f"Not available: {type(store).__name__} does not support user sessions."
    return ""


def gather(session: Session, context: Context) -> UserFacts:
    """The panel's facts for this browser's session (one store read per listed one)."""
    reason = unavailable(context)
    if reason:
        return UserFacts(unavailable=reason)
    user = session.user_id
    if user is None:
        return UserFacts()
    listed = context.middleware.user_sessions(user)
    return UserFacts("", user, session.handle, tuple(listed), time.time())


def _log_in(session: Session, context: Context) -> str:
    reason = unavailable(context)
    if reason:
        return reason
    name = context.form.get("user", "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return f"Type a name of 1 to {MAX_NAME} printable characters to log in."
    session["agent"] = context.user_agent[:MAX_AGENT] or "(no User-Agent sent)"
    session.bind_user(name)
    return (
        f"bind_user({name!r}): a new key at once, as every login must, and the "
        f"store now lists this session among {name!r}'s; your browser's User-Agent "
        "is kept in the session as 'agent'. Log in under the same name in another "
        "browser (or a private window) to see both."
    )


def _revoke_one(session: Session, context: Context) -> str:
    user, handle = session.user_id, context.form.get("handle", "")
    if user is None:
        return "Not logged in: log in first to see and sign out your sessions."
    if handle == session.handle:
        return "That is this browser's session: use Log out to end it."
    if not context.middleware.revoke_user_session(user, handle):
        return "That session was already gone (signed out, or expired)."
    return (
        f"revoke_user_session({user!r}, {short_handle(handle)!r}): its record "
        "deleted; that browser's next page load finds no session and is logged "
        "out. This browser's session did not change."
    )


def _revoke_others(session: Session, context: Context) -> str:
    user = session.user_id
    if user is None:
        return "Not logged in: log in first to see and sign out your sessions."
    count = context.middleware.revoke_user_sessions(user, keep=session)
    ended = "no other session" if count == 0 else f"{count} other session(s)"
    return (
        f"revoke_user_sessions({user!r}, keep=session): {ended} of {user!r} "
        "deleted, this one kept: what a password change should do."
    )


def _log_out(session: Session, context: Context) -> str:
    user = session.user_id
    if user is None:
        return "Not logged in: there was nobody to log out."
    session.flush()
    return (
        f"flush(): this session deleted, and with it from {user!r}'s list, and the "
        "cookie deleted. The other sessions of the user stay logged in."
    )


LOG_IN = Action("log-in", "Log in", _log_in)
REVOKE_ONE = Action("revoke-one", "Sign out this other session", _revoke_one)
REVOKE_OTHERS = Action("revoke-others", "Sign out everywhere else", _revoke_others)
LOG_OUT = Action("log-out", "Log out", _log_out)
ACTIONS = (LOG_IN, REVOKE_ONE, REVOKE_OTHERS, LOG_OUT)
