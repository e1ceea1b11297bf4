"""The demo's actions: each does only what its label says and explains itself.

An action gets the request's session and a :class:`Context`, changes the
session (or not), and returns the one line the page shows afterwards,
before the ``Set-Cookie`` the response carried. The tour is the list
:data:`SECTIONS`: a new part of the demo is one more section here.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from . import race, userpage, users
from .steps import Action, Context, Section

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["ACTIONS", "SECTIONS", "Action", "Context", "Section"]

#: The padding the "add 1 KB" button adds, in characters of random text.
KILOBYTE = 1024
#: Server-side stores take any size; the demo stops there.
MAX_PADDING = 16 * KILOBYTE


def _expire_in_60(session: Session, context: Context) -> str:
    session.set_expiry(60)
    return (
        "set_expiry(60): the session now ends 60 s after its last change; the "
        "cookie says Max-Age=60. Wait a minute without reloading, then reload."
    )


def _expire_at_close(session: Session, context: Context) -> str:
    session.set_expiry(0)
    ends = (
        "refuses the cookie"  # the cookie store keeps no record
        if context.client_side
        else "drops the record"
    )
    return (
        "set_expiry(0): the cookie has no Max-Age or Expires any more, so the "
        f"browser drops it when it closes; the server still {ends} after the "
        "default age without a change."
    )


def _default_expiry(session: Session, context: Context) -> str:
    session.set_expiry(None)
    if not session.modified:
        return "set_expiry(None): the session already had the default expiry."
    return (
        "set_expiry(None): back to the default, cookie_age "
        f"({session.get_session_cookie_age()} s) after the last change."
    )


def _cycle(session: Session, context: Context) -> str:
    had_key = session.session_key is not None
    session.cycle_key()
    if context.client_side:
        return (
            "cycle_key(): the same data signed into a new cookie value. The cookie "
            "store keeps nothing on the server, so a copy of the old value stays "
            "valid until it expires."
        )
    if not had_key:
        return "cycle_key(): there was no session yet; it now has a first key."
    return (
        "cycle_key(): a new key for the same data, and the old record deleted "
        "at once: what a login must do. Compare the key's fingerprint."
    )


def _flush(session: Session, context: Context) -> str:
    had_key = session.session_key is not None
    session.flush()
    if not had_key:
        return "flush(): there was no session to delete."
    deleted = "" if context.client_side else "its record deleted from the store, "
    return (
        f"flush(): the data cleared, {deleted}the key dropped, and the cookie "
        "deleted: a logout. The page load that followed started a new session."
    )


def _add_kilobyte(session: Session, context: Context) -> str:
    padding = session.get("padding", "")
    if not context.client_side and len(padding) >= MAX_PADDING:
        return f"The demo stops at {MAX_PADDING // KILOBYTE} KB of padding."
    # Random text, so that the cookie store's compression cannot shrink it.
    session["padding"] = padding + secrets.token_urlsafe(KILOBYTE)[:KILOBYTE]
    size = (len(padding) + KILOBYTE) // KILOBYTE
    if context.client_side:
        return f"Added 1 KB to the session ({size} KB of padding): the cookie grew."
    return (
        f"Added 1 KB to the session ({size} KB of padding): the record grew, "
        "the cookie did not; it holds only the key."
    )


def _drop_padding(session: Session, context: Context) -> str:
    if session.pop("padding", None) is None:
        return "There was no padding to remove."
    return "Removed the padding from the session."


def _race(session: Session, context: Context) -> str:
    if session.session_key is None:
        return "No session yet: load the page once, then fire the requests."
    result = race.run_race(context.middleware, context.cookie_header, dict(session))
    if result.failed:
        return (
            f"{result.failed} of {race.RACERS} requests failed "
            f"({result.statuses[0]}); nothing was counted."
        )
    survivors = _survivors(context, result)
    lost = race.RACERS - result.scratch_survivors
    whole = (
        f"The same 20 requests saving the whole session, as read, into a scratch "
        f"copy kept {result.scratch_survivors} of {race.RACERS}: {lost} lost."
    )
    if context.client_side:
        return (
            f"20 concurrent requests each set their own key; each response carries "
            f"a whole cookie and a browser keeps the last one: {survivors} of "
            f"{race.RACERS} survived. The cookie store cannot merge; a server-side "
            f"store can. {whole} Your own cookie was left as it was."
        )
    return (
        f"20 concurrent requests each set their own key, all having loaded the "
        f"session before any saved: {survivors} of {race.RACERS} survived, merged "
        f"by the store. {whole}"
    )


def _survivors(context: Context, result: race.RaceResult) -> int:
    """The keys of this run in the session the last response's cookie names."""
    name = context.middleware.settings.cookie_name
    value = race.last_cookie_value(result, name)
    if value is None:
        return 0
    survived = context.middleware.open_session(value)
    return sum(
        1 for key in survived if key.startswith("race-") and survived[key] == result.run
    )


SECTIONS: tuple[Section, ...] = (
    Section(
        "Expiry",
        "A session lives cookie_age seconds after its last change. Reading it "
        "is not a change; each load of this page is, because it counts a visit.",
        (
            Action("expire-60", "Expire 60 s after the last change", _expire_in_60),
            Action("browser-close", "Expire when the browser closes", _expire_at_close),
            Action("default-expiry", "Back to the default expiry", _default_expiry),
        ),
    ),
    Section(
        "Log in, log out",
        "A login must change the key (against session fixation); a logout must "
        "delete the session, not just empty it.",
        (
            Action("cycle", "Cycle the key (log in)", _cycle),
            Action("flush", "Flush (log out)", _flush),
        ),
    ),
    Section(
        "Size",
        "The cookie store carries the whole session in the cookie, and browsers "
        "drop cookies over 4 KB: wsgisession refuses to send one rather than let "
        "it vanish. A server-side store's cookie holds only the key.",
        (
            Action("add-kb", "Add 1 KB", _add_kilobyte),
            Action("drop-padding", "Remove the padding", _drop_padding),
        ),
    ),
    Section(
        "No lost updates",
        "Two requests of one session that change different keys both survive: "
        "a save applies only what its request changed, onto the record as it "
        "is now.",
        (Action("race", f"Fire {race.RACERS} concurrent requests", _race),),
    ),
    Section(
        "A user's sessions",
        "Log in under a name in two browsers, see both sessions, revoke the "
        "other: bind_user() at login puts the session in the user's list, which "
        "the server can show and end, one session or all but this one.",
        users.ACTIONS,
        userpage.panel,
    ),
)

ACTIONS: dict[str, Action] = {
    action.name: action for section in SECTIONS for action in section.actions
}
