"""A small demo app: a page that shows its session and lets you change it."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from .session import Session

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wsgisession demo</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>wsgisession demo</h1>
<p>Store: <code>{store}</code></p>
<p>Visits in this session: <strong>{visits}</strong></p>
<p>Session key: <code>{key}</code><br>
Expires: {expiry}</p>
<p>Data: <code>{data}</code></p>
<form method="post">
  <button name="action" value="visit">Count a visit</button>
  <button name="action" value="expire">Expire in 60 s</button>
  <button name="action" value="browser">Expire at browser close</button>
  <button name="action" value="cycle">Cycle key (login)</button>
  <button name="action" value="flush">Flush (logout)</button>
</form>
</body></html>
"""


def _apply(session: Session, action: str) -> None:
    if action == "expire":
        session.set_expiry(60)
    elif action == "browser":
        session.set_expiry(0)
    elif action == "cycle":
        session.cycle_key()
    elif action == "flush":
        session.flush()
        return
    session["visits"] = session.get("visits", 0) + 1


def demo_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """Show the session; a POST applies the button's action then redirects."""
    session: Session = environ["wsgisession"]
    if environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode("latin-1"))
        _apply(session, form.get("action", ["visit"])[0])
        start_response(
            "303 See Other", [("Location", environ.get("SCRIPT_NAME", "") + "/")]
        )
        return [b""]
    if environ.get("PATH_INFO", "/") != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    expiry = (
        "when the browser closes"
        if session.get_expire_at_browser_close()
        else f"in {session.get_expiry_age()} s of inactivity"
    )
    body = PAGE.format(
        store=html.escape(repr(session._store)),
        visits=session.get("visits", 0),
        key=html.escape(
            session.session_key[:8] + "…" if session.session_key else "(none yet)"
        ),
        expiry=expiry,
        data=html.escape(repr(dict(session))),
    ).encode("utf-8")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
