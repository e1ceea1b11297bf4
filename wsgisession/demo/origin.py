"""Which posts the demo takes: the forms of its own page, not another page's.

SameSite=Lax keeps the cookie off a form posted from another *site*, but
another port of the same host (``http://127.0.0.1:9999``) is the same site,
and a login posted from anywhere needs no cookie at all. Browsers say where
a form comes from. ``Sec-Fetch-Site`` is the browser's own verdict, right
behind a proxy that forwards the port under another name (a cloud IDE's
forwarded URL); without it, ``Origin`` must name the
``Host`` the request came to. A client that sends neither (curl, an old
browser) is taken at its word.
"""

from __future__ import annotations

from typing import Any

__all__ = ["foreign_post"]

#: ``Sec-Fetch-Site`` values of a request the demo's own page made (or the
#: user typed).
_OWN_FETCH = frozenset({"same-origin", "none"})


def _own_origin(environ: dict[str, Any]) -> str:
    """``scheme://host[:port]`` the request was sent to, as an Origin names it."""
    host = environ.get("HTTP_HOST") or (
        f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    )
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}".lower()


def foreign_post(environ: dict[str, Any]) -> str:
    """Why this POST is refused (posted from another page); "" if it is not."""
    fetch = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    origin = environ.get("HTTP_ORIGIN", "").strip().lower()
    if fetch:
        foreign = fetch not in _OWN_FETCH
    else:
        foreign = bool(origin) and origin != _own_origin(environ)
    if foreign:
        shown = origin or f"a {fetch} page"
        return (
            f"Refused: this form was posted from another page ({shown}), not from "
            "the demo's own. A site must not let other pages log its users in or "
            "out, or end their sessions (CSRF). Use the buttons of the demo's page."
        )
    return ""
