"""The user-sessions section's HTML: a login form, or the user's sessions and buttons."""

from __future__ import annotations

import datetime
import html
from typing import TYPE_CHECKING

from . import facts as words
from .users import (
    LOG_IN,
    LOG_OUT,
    MAX_NAME,
    REVOKE_ONE,
    REVOKE_OTHERS,
    UserFacts,
    gather,
    short_handle,
)

if TYPE_CHECKING:
    from ..session import Session
    from ..usersessions import UserSession
    from .steps import Context

__all__ = ["panel", "render"]


def _button(name: str, label: str, element_id: str) -> str:
    return (
        f'<button name="action" value="{name}" id="{html.escape(element_id)}">'
        f"{html.escape(label)}</button>"
    )


def _moment(at: float) -> str:
    return words.expiry_moment(datetime.datetime.fromtimestamp(at, datetime.UTC))


def _ago(now: float, at: float) -> str:
    return "just now" if now - at < 2 else f"{words.countdown(now - at)} ago"


def _login_form() -> str:
    return f"""
<p id="user-status">Not logged in in this browser.</p>
<form method="post" action="./">
  <label>Name <input name="user" id="user-name" maxlength="{MAX_NAME}" required
   placeholder="alice"></label>
  {_button(LOG_IN.name, LOG_IN.label, LOG_IN.name)}
</form>
"""


def _entry(listed: UserSession, this: bool, now: float) -> str:
    handle = html.escape(listed.handle)
    agent = html.escape(str(listed.data.get("agent", "(no device stored)")))
    if this:
        marker = ' <strong class="this-browser">this browser</strong>'
        action = ""
    else:
        marker = ""
        action = f"""
  <form method="post" action="./"><input type="hidden" name="handle" value="{handle}">
  {_button(REVOKE_ONE.name, REVOKE_ONE.label, "revoke-" + listed.handle)}</form>"""
    return f"""
<li class="user-session" data-handle="{handle}"><code class="handle">{html.escape(short_handle(listed.handle))}</code>{marker}
  <br><span class="device">{agent}</span>
  <br><span class="times">created <span title="{_moment(listed.created)}">{_ago(now, listed.created)}</span>,
  last saved <span class="saved" title="{_moment(listed.saved_at)}">{_ago(now, listed.saved_at)}</span>,
  expires <span title="{_moment(listed.expires_at)}">in {words.countdown(listed.expires_at - now)}</span></span>{action}
</li>"""


def render(user_facts: UserFacts) -> str:
    """The section's body: why not, a login form, or the user's sessions."""
    if user_facts.unavailable:
        return f'<p id="users-unavailable">{html.escape(user_facts.unavailable)}</p>'
    if user_facts.user_id is None:
        return _login_form()
    entries = "".join(
        _entry(listed, listed.handle == user_facts.this_handle, user_facts.now)
        for listed in user_facts.sessions
    )
    count = len(user_facts.sessions)
    return f"""
<p id="user-status">Logged in as <strong id="user">{html.escape(user_facts.user_id)}</strong>
in this browser: <span id="user-count">{count}</span> live session(s) of this user,
the most recently saved first (handles shortened; hover a time for its date).</p>
<ul id="user-sessions">{entries}
</ul>
<form method="post" action="./">
  {_button(REVOKE_OTHERS.name, REVOKE_OTHERS.label, REVOKE_OTHERS.name)}
  {_button(LOG_OUT.name, LOG_OUT.label, LOG_OUT.name)}
</form>
"""


def panel(session: Session, context: Context) -> str:
    """The section's body for this browser's session."""
    return render(gather(session, context))
