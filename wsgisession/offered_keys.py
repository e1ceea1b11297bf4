"""The session ids a request's cookies offer, read only when the session is used.

A browser may send several cookies of the session's name (one planted from
a sibling subdomain on a longer path comes first): the session loads the
first the store knows, trying a few at most.
"""

from __future__ import annotations

from collections.abc import Callable

from .cookie_header import cookie_values

__all__ = ["MAX_KEY_CANDIDATES", "OfferedKeys"]

#: The most session cookies of one request tried against the store: a
#: header with thousands of them costs no more than a few loads.
MAX_KEY_CANDIDATES = 4


class OfferedKeys:
    """The session keys a request's cookies offer: the well-formed ones, in order.

    The session calls it on first use (the ``Cookie`` header is parsed
    only then). A browser may send several cookies of the name (one planted
    from a sibling subdomain on a longer path comes first): the session
    loads the first the store knows. At most :data:`MAX_KEY_CANDIDATES`.
    It holds the header, not the request, so that the session, which the
    request's environ holds, refers to nothing that holds it back.
    """

    __slots__ = ("had_cookie", "header", "is_valid", "name", "untried")

    # Made by wsgisession.response.new_response, which sets these (called
    # bare: a Python __init__ cost every request with a cookie 0.8K
    # instructions more).
    header: str
    name: str
    is_valid: Callable[[object], bool]
    #: Whether the header had a cookie of the name (known once called).
    had_cookie: bool
    #: Whether well-formed values were left untried (past the cap): the
    #: real session may be among them, so its cookie must not be deleted.
    untried: bool

    def __call__(self) -> tuple[str, ...]:
        values = cookie_values(self.header, self.name)
        self.had_cookie = bool(values)
        is_valid = self.is_valid
        if len(values) == 1:  # the usual case
            return (values[0],) if is_valid(values[0]) else ()
        keys: list[str] = []
        for value in values:
            if value not in keys and is_valid(value):
                if len(keys) == MAX_KEY_CANDIDATES:
                    self.untried = True
                    break
                keys.append(value)
        return tuple(keys)

    def __repr__(self) -> str:
        return f"<OfferedKeys of {self.name!r}>"
