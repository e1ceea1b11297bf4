"""The demo page: server-rendered HTML, no external assets.

:func:`render` builds the page from plain values. ``WIRE_MARK`` stands where
the outer layer (see :mod:`.app`) writes what this very response sends to
the browser, which the page itself cannot know while it is being built.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import facts as words
from .tour import Section

__all__ = ["WIRE_MARK", "PageFacts", "Report", "render", "wire_rows"]

WIRE_MARK = "<!--wsgisession-demo-wire-->"


@dataclass(frozen=True)
class Report:
    """What the last action did, shown once on the page that follows it."""

    label: str
    explanation: str
    set_cookie: str  # summarized header, or "" when the response carried none
    error: str = ""


@dataclass(frozen=True)
class PageFacts:
    """The session as this page load left it."""

    store: str
    was_new: bool
    visits: int
    data: str
    browser_close: bool
    expires: str  # the date, in words
    expires_at: float  # Unix time, for the live countdown
    left: str  # countdown in words
    cookie_age: int
    client_side: bool = False  # the cookie store: no record on the server


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46em; margin: 1.5em auto;
       padding: 0 1em; line-height: 1.45; color: #1d2330; }
h1 { margin-bottom: 0.2em; } h2 { margin: 1.3em 0 0.3em; font-size: 1.15em; }
code { background: #eef1f6; padding: 0 0.25em; border-radius: 3px; }
.report { border-left: 4px solid #2f6fde; background: #f2f6ff; padding: 0.6em 0.9em; }
.report.error { border-color: #c62828; background: #fff2f2; }
.facts td { padding: 0.1em 0.8em 0.1em 0; vertical-align: top; }
button { margin: 0.15em 0.3em 0.15em 0; padding: 0.35em 0.8em; }
.intro { color: #444; margin: 0.2em 0 0.4em; }
#user-sessions { padding-left: 1.2em; } .user-session { margin: 0.4em 0; }
.user-session form { display: inline; } .device, .times { color: #444; }
.this-browser { color: #2e7d32; }
"""

# Keeps the countdown true while the page stays open; without script the
# text written by the server stays (it was true when the page loaded).
SCRIPT = """
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var end = parseFloat(el.getAttribute("data-expires-at")) * 1000;
  function words(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + (d == 1 ? " day" : " days") + (h ? " " + h + " h" : "");
    if (h) return h + " h" + (m ? " " + m + " min" : "");
    if (m) return m + " min" + (x ? " " + x + " s" : "");
    return x + " s";
  }
  function tick() {
    var left = Math.floor((end - Date.now()) / 1000);
    el.textContent = left > 0 ? "in " + words(left)
      : "expired: the next page load starts a new session";
  }
  tick(); setInterval(tick, 1000);
})();
"""


def _report(report: Report | None) -> str:
    if report is None:
        return (
            '<p class="report" id="report">Each button below does one thing; '
            "this box then says what happened and what the response sent.</p>"
        )
    cookie = (
        f"<br>Set-Cookie: <code>{html.escape(report.set_cookie)}</code>"
        if report.set_cookie
        else "<br>no Set-Cookie: nothing changed"
    )
    if report.error:
        return (
            f'<p class="report error" id="report"><strong>{html.escape(report.label)}'
            f"</strong>: {html.escape(report.error)}{cookie}</p>"
        )
    return (
        f'<p class="report" id="report"><strong>{html.escape(report.label)}</strong>: '
        f"{html.escape(report.explanation)}{cookie}</p>"
    )


def _expiry(facts: PageFacts) -> str:
    if facts.browser_close:
        ends = "refuses the cookie" if facts.client_side else "drops the record"
        return (
            f"when the browser closes (the cookie has no Max-Age); the server {ends} "
            f"{facts.cookie_age} s after the last change"
        )
    return (
        f'{html.escape(facts.expires)}: <span id="countdown" data-expires-at='
        f'"{facts.expires_at:.0f}">in {html.escape(facts.left)}</span> unless the '
        "session changes"
    )


def _session(facts: PageFacts) -> str:
    status = (
        "no session yet: your browser sent no session cookie the store knows. "
        "This page load counted a visit, which creates one."
        if facts.was_new
        else "your browser sent its session cookie and the store found the session."
    )
    return f"""
<h2>Your session</h2>
<p id="status">Before this page load: {status}</p>
<table class="facts">
<tr><td>Visits</td><td><strong id="visits">{facts.visits}</strong> (each load of
this page adds one, as the README's example does: reload to see it)</td></tr>
<tr><td>Expires</td><td id="expiry">{_expiry(facts)}</td></tr>
<tr><td>Data</td><td><code id="data">{html.escape(facts.data)}</code></td></tr>
{WIRE_MARK}
</table>
"""


def section_id(section: Section) -> str:
    """The HTML id of a section: its title, lowercase, words joined by "-"."""
    return "section-" + "-".join(re.findall(r"[a-z0-9]+", section.title.lower()))


def _section(section: Section, panels: Mapping[str, str]) -> str:
    if section.panel is not None:
        body = panels.get(section.title, "")
    else:
        buttons = "\n".join(
            f'  <button name="action" value="{html.escape(action.name)}" '
            f'id="{html.escape(action.name)}">{html.escape(action.label)}</button>'
            for action in section.actions
        )
        body = f'<form method="post" action="./">\n{buttons}\n</form>'
    return f"""
<section id="{section_id(section)}">
<h2>{html.escape(section.title)}</h2>
<p class="intro">{html.escape(section.intro)}</p>
{body}
</section>
"""


def render(
    facts: PageFacts,
    report: Report | None,
    sections: tuple[Section, ...],
    panels: Mapping[str, str] | None = None,
) -> str:
    """The whole page; ``panels`` holds the HTML of each section with a panel, by title."""
    tour = "".join(_section(section, panels or {}) for section in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsgisession demo</title><style>{STYLE}</style></head>
<body>
<h1>wsgisession demo</h1>
<p>Sessions live in {html.escape(facts.store)}.</p>
<div id="now">
{_report(report)}
{_session(facts)}
</div>
{tour}
<script>{SCRIPT}</script>
</body></html>
"""


def wire_rows(header: str | None, sent: str | None, cookie_name: str) -> str:
    """Table rows: the key the browser holds after this response, and the cookie.

    ``header`` is the response's ``Set-Cookie`` for the session (None if it
    sent none), ``sent`` the value the browser sent with the request.
    """
    if header is not None:
        value = header.split(";", 1)[0].split("=", 1)[1].strip('"')
        shown = html.escape(words.summarize_set_cookie(header, cookie_name))
        cookie = (
            f"this page's response re-sent it, as the visit changed the session: "
            f'<code>{shown}</code>, <strong id="cookie-size">{len(header)}</strong> '
            f"of the {words.COOKIE_SIZE_LIMIT} bytes browsers accept"
        )
    elif sent is not None:
        value, cookie = (
            sent,
            "no Set-Cookie: nothing changed; your browser keeps its own",
        )
    else:
        return '<tr><td>Cookie</td><td id="cookie">none</td></tr>'
    return (
        f'<tr><td>Key</td><td><strong id="fingerprint">{words.fingerprint(value)}'
        "</strong> (a short hash of the key your browser holds; the page never "
        "shows the key itself)</td></tr>\n"
        f'<tr><td>Cookie</td><td id="cookie">{cookie}</td></tr>'
    )
