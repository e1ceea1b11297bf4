"""The caching headers of a response that used the session.

A response that depends on the session cookie says so (``Vary: Cookie``);
one that sets or deletes the cookie is kept out of shared caches
(``Cache-Control: private``), which would otherwise hand one user's session
to the next. The cookie itself is :mod:`.cookies`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "VARY_OR_CACHE_CONTROL_LENGTHS",
    "add_session_headers",
    "lengths_rule_out_caching_headers",
    "session_headers",
]


#: The lengths of the names ``Vary`` and ``Cache-Control``: a header of
#: neither length is neither (see :func:`add_session_headers`).
VARY_OR_CACHE_CONTROL_LENGTHS = frozenset((4, 13))


def lengths_rule_out_caching_headers(headers: Iterable[Sequence[str]]) -> bool:
    """Whether no header name is of the length of ``Vary`` or
    ``Cache-Control`` (the usual case), so neither is among ``headers``.

    A plain loop: ``map(len, map(operator.itemgetter(0), headers))`` cost
    about 1.4K instructions more for three headers (an itemgetter call
    builds a tuple of its argument), although fewer bytecodes.
    """
    for header in headers:
        if len(header[0]) in VARY_OR_CACHE_CONTROL_LENGTHS:
            return False
    return True


def session_headers(private: bool) -> tuple[tuple[str, str], ...]:
    """What :func:`add_session_headers` adds to headers that name neither
    ``Vary`` nor ``Cache-Control``."""
    if private:
        return (("Vary", "Cookie"), ("Cache-Control", "private"))
    return (("Vary", "Cookie"),)


def add_session_headers(headers: list[tuple[str, str]], *, private: bool) -> None:
    """Add ``Cookie`` to ``Vary`` and, if ``private``, ``Cache-Control: private``.

    In place: ``Vary`` gets ``Cookie`` once (not at all after ``*``);
    ``Cache-Control`` is only added when the app set none. ``private`` is
    for a response that sets or deletes the session cookie: a shared cache
    that kept it would hand one user's session to the next. The lengths of
    the names rule out most headers.
    """
    if lengths_rule_out_caching_headers(headers):
        headers.append(("Vary", "Cookie"))  # the usual case: the app set neither
        if private:
            headers.append(("Cache-Control", "private"))
        return
    vary_at = -1
    has_cache_control = False
    for index, (name, _) in enumerate(headers):
        lowered = name.lower()
        if lowered == "vary" and vary_at < 0:
            vary_at = index
        elif lowered == "cache-control":
            has_cache_control = True
    if vary_at < 0:
        headers.append(("Vary", "Cookie"))
    else:
        name, value = headers[vary_at]
        tokens = [token.strip() for token in value.split(",") if token.strip()]
        if "*" not in tokens and all(token.lower() != "cookie" for token in tokens):
            headers[vary_at] = (name, ", ".join([*tokens, "Cookie"]))
    if private and not has_cache_control:
        headers.append(("Cache-Control", "private"))
