"""The checks of the cookie's ``Domain`` and ``Path`` options, for any text.

An internationalized domain (``münchen.de``) and a path that is not ASCII
(``/café``) are taken in the form a browser matches and werkzeug sends
(and so Flask's own session cookie): ``xn--mnchen-3ya.de`` and
``/caf%C3%A9``. The ASCII checks of :mod:`._coerce` then apply.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from . import _coerce as c

__all__ = ["cookie_domain", "cookie_path"]

#: Characters a browser sends percent-encoded (as UTF-8) in a URL's path.
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
#: UTS 46's deviation characters (ß and ẞ, ς, the zero-width joiners):
#: browsers keep them in the name (``faß.de`` is ``xn--fa-hia.de``),
#: Python's IDNA 2003 codec maps them away (``fass.de``), a Domain that
#: host's browsers reject.
_DEVIATIONS = re.compile("[\u00df\u1e9e\u03c2\u200c\u200d]")


def cookie_domain(key: str, value: Any) -> str | None:
    """A domain name, an internationalized one in its IDNA (punycode) form."""
    if isinstance(value, str) and not value.isascii():
        if _DEVIATIONS.search(value):
            raise c.invalid(
                key,
                value,
                "a domain name without ß, ς or a zero-width joiner, which "
                "browsers and Python's IDNA encode differently; write the "
                "name in its xn-- form as browsers encode it (faß.de: xn--fa-hia.de)",
            )
        dot = "." if value.startswith(".") else ""
        try:
            value = dot + value[len(dot) :].encode("idna").decode("ascii")
        except UnicodeError:  # an empty or over-long label, a lone surrogate
            raise c.invalid(key, value, "a domain name such as example.com") from None
    return c.cookie_domain(key, value)  # type: ignore[no-any-return]


def cookie_path(key: str, value: Any) -> str:
    """A path, what is not ASCII in it percent-encoded as UTF-8."""
    if isinstance(value, str) and not value.isascii():
        try:
            value = _NOT_ASCII.sub(lambda m: quote(m.group(), safe=""), value)
        except UnicodeEncodeError:  # a lone surrogate
            raise c.invalid(key, value, "a path of valid Unicode text") from None
    return c.cookie_path(key, value)  # type: ignore[no-any-return]
