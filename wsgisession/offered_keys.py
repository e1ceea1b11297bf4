"""The session ids a request's cookies offer, read only when the session is used.

A browser may send several cookies of the session's name (one planted from
a sibling subdomain on a longer path comes first): the session loads the
first the store knows, trying a few at most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .cookie_header import MOST_PAIRS_READ, first_cookie_values
from .keys import is_valid_key, plain_pair_matcher

__all__ = ["MAX_KEY_CANDIDATES", "OfferedKeyMethods", "keys_parser"]

#: The most session cookies of one request tried against the store: a
#: header with thousands of them costs no more than a few loads.
MAX_KEY_CANDIDATES = 4


class OfferedKeyMethods:
    """How a session reads the keys its request's ``Cookie`` header offers,
    as a mixin of :class:`~wsgisession.session.Session`.

    The middleware's session factory gives each session the header (parsed
    only on first use) and, shared by its sessions, its parser (bound to
    the cookie's name and the store's key check). The session holds the header, not the request,
    so that it (which the request's environ holds) refers to nothing that
    holds it back. What the header held is read by the response: whether
    it had a cookie of the name, and whether values were left untried.
    """

    #: Whether the header had a cookie of the name (known once parsed).
    _had_cookie = False
    #: Whether well-formed values were left untried (past the cap): the
    #: real session may be among them, so its cookie must not be deleted.
    _untried = False
    #: The ids to load (see :meth:`offered_keys`), the session's own.
    _offered: Sequence[str]
    #: Where they come from until first use: the request's ``Cookie``
    #: header (a session of the middleware), a callable giving them (one
    #: made by hand), or None (read already, or none).
    _key_source: str | Callable[[], Sequence[str]] | None

    def offered_keys(self) -> Sequence[str]:
        """The ids this session will try to load, best first (no I/O; empty once loaded)."""
        source = self._key_source
        if source is not None:
            self._key_source = None
            self._offered = self._keys_from(source)
        return self._offered

    def _keys_from(self, source: Any) -> Sequence[str]:
        """The ids ``source`` offers: a session made by hand calls its
        callable; the middleware's sessions parse their ``Cookie`` header
        instead (their class's method, see :func:`keys_parser`)."""
        result: Sequence[str] = source()
        return result


def keys_parser(
    cookie_name: str, is_valid: Callable[[object], bool]
) -> Callable[[Any, str], tuple[str, ...]]:
    """The ``_keys_from`` method of one middleware's sessions, for cookies
    named ``cookie_name`` and keys the store's ``is_valid`` accepts.

    Both are its closure's: CPython 3.11 reads a class attribute through an
    instance without specializing the read, and every request that uses
    its session parses its header.
    """

    prefix = cookie_name + "="
    value_at = len(prefix)
    # The store's keys are the default's (None: it checks them its own way).
    plain_key = plain_pair_matcher(cookie_name) if is_valid is is_valid_key else None

    def _keys_from(session: Any, header: str) -> tuple[str, ...]:
        """The well-formed keys of ``header``'s cookies of the name, in order,
        at most :data:`MAX_KEY_CANDIDATES` (a browser may send several: one
        planted from a sibling subdomain on a longer path comes first).

        The one plain pair of a client with no other cookie is read here
        (:func:`first_cookie_values`' first case, without its call), with a key
        of the default shape in one match."""
        if plain_key is not None:
            match = plain_key(header)
            if match is not None:
                session._had_cookie = True
                return (match[1],)
        if (
            header.startswith(prefix)
            and ";" not in header
            and " " not in header
            and '"' not in header
            and "\t" not in header
            and header.isascii()
        ):
            session._had_cookie = True
            value = header[value_at:]
            return (value,) if is_valid(value) else ()
        # Pairs past the first MOST_PAIRS_READ of the name are left unread
        # (a hostile header of hundreds), as values past the cap are untried.
        values, unread = first_cookie_values(header, cookie_name, MOST_PAIRS_READ)
        session._untried = unread
        if not values:
            return ()
        session._had_cookie = True
        if len(values) == 1:  # the usual case
            return (values[0],) if is_valid(values[0]) else ()
        keys: list[str] = []
        for value in values:
            if value not in keys and is_valid(value):
                if len(keys) == MAX_KEY_CANDIDATES:
                    session._untried = True
                    break
                keys.append(value)
        return tuple(keys)

    return _keys_from
