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


def cookie_domain(key: str, value: Any) -> str | None:
    """A domain name, an internationalized one in its IDNA (punycode) form."""
    if isinstance(value, str) and not value.isascii():
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
