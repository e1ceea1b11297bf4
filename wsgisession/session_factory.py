"""The per-middleware session class and its per-request constructor.

Every request gets a session, touched or not; this is the path that makes
them, so it is written to cost as little as CPython allows (see
:meth:`wsgisession.session.Session.request_factory`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .config import Settings
from .serializers import Serializer
from .stores.base import Store, store_key_check

__all__ = ["bound_factory"]

#: What a request offers to load: the well-formed ids of its cookies, best first.
KeySource = Callable[[], Sequence[str]]


def bound_factory(
    cls: type[Any], store: Store, settings: Settings, serializer: Serializer
) -> Callable[[str | None], Any]:
    """A constructor of ``cls`` sessions sharing ``store``, ``settings`` and
    ``serializer``, the cookie's name and the store's key check: a subclass
    holds them, and each request sets only its ``Cookie`` header (or None)."""
    shared = {
        "_store": store,
        "_settings": settings,
        "_serializer": serializer,
        "_cookie_name": settings.cookie_name,
        "_is_valid_key": staticmethod(store_key_check(store)),
        # Called bare: no Python __init__ runs (cheaper than object.__new__).
        "__init__": object.__init__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    if not settings.lock:  # no record of these sessions ever takes one
        shared["release_lock"] = _holds_no_lock
    else:  # nothing releases a lock taken after the middleware's release
        shared["_settings_after_lock"] = dataclasses.replace(settings, lock=False)
    bound: Callable[[], Any] = type(cls.__name__, (cls,), shared)

    def for_request(cookie_header: str | None) -> Any:
        session = bound()
        session._key_source = cookie_header  # parsed on first use
        # Every response reads these two: an instance's own attribute is
        # read faster than a class default (CPython specializes the former).
        session.accessed = session.modified = False
        return session

    return for_request


def _holds_no_lock(session: Any) -> None:
    """``release_lock`` of a middleware whose settings take no lock: nothing to do."""
