"""Whether ``cookie_secure = auto`` sets ``Secure``: the request's scheme.

``auto`` trusts ``wsgi.url_scheme`` only, never a forwarding header, which
any client can send. Behind a proxy that ends TLS the scheme is ``http``
unless the server or a ``ProxyFix`` restores it, and the cookie then goes
out without ``Secure``; a request whose forwarding header says ``https``
is the sign of that setup, so it is logged (throttled: clients send it).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .logthrottle import ThrottledWarning

__all__ = ["auto_secure"]

logger = logging.getLogger(__name__)

#: ``proto=https`` in an RFC 7239 ``Forwarded`` header, quoted or not.
_FORWARDED_HTTPS = re.compile(
    r'(?:^|[;,\s])proto\s*=\s*"?https"?\s*(?:$|[;,])', re.IGNORECASE
)

_warn_forwarded_https = ThrottledWarning(logger)


def auto_secure(environ: dict[str, Any]) -> bool:
    """Whether the request came over https (``wsgi.url_scheme``), as
    ``cookie_secure = auto`` reads it; a proxy's header saying https where
    the scheme is not is logged as a WARNING, at most once a minute."""
    if environ.get("wsgi.url_scheme") == "https":
        return True
    header = _forwarded_https_header(environ)
    if header:
        _warn_forwarded_https(
            "cookie_secure = auto sent the session cookie without Secure: "
            "wsgi.url_scheme is %r, but the request's %s header says the "
            "client used https (a proxy that ends TLS). Have the server "
            "restore the scheme from the proxy's header (werkzeug's ProxyFix, "
            "gunicorn's forwarded_allow_ips, waitress's trusted_proxy) or set "
            "cookie_secure = true",
            environ.get("wsgi.url_scheme"),
            header,
        )
    return False


def _forwarded_https_header(environ: dict[str, Any]) -> str:
    """The name of the forwarding header that says https, or ""."""
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    if proto and any(value.strip().lower() == "https" for value in proto.split(",")):
        return "X-Forwarded-Proto"
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded and _FORWARDED_HTTPS.search(forwarded):
        return "Forwarded"
    return ""
