"""The per-middleware session class, its per-request constructor, and the
constructor of its sessions' records.

Every request gets a session, touched or not; this is the path that makes
them, so it is written to cost as little as CPython allows (see
:meth:`wsgisession.session.Session.request_factory`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .config import Settings
from .offered_keys import keys_parser
from .serializers import Serializer
from .session_record import SessionRecord
from .stores.base import Store, store_key_check

__all__ = ["bound_factory", "for_request", "record_factory"]

#: What a request offers to load: the well-formed ids of its cookies, best first.
KeySource = Callable[[], Sequence[str]]


def bound_factory(
    cls: type[Any], store: Store, settings: Settings, serializer: Serializer
) -> Callable[[], Any]:
    """The class of ``cls`` sessions sharing ``store``, ``settings`` and
    ``serializer``, and the parser of the cookie's ids: a subclass that
    holds them, called bare; each request's session is then given only
    what :func:`for_request` sets."""
    shared = {
        "_store": store,
        "_settings": settings,
        "_serializer": serializer,
        "_keys_from": keys_parser(settings.cookie_name, store_key_check(store)),
        "_new_record": record_factory(store, serializer),
        # Called bare: no Python __init__ runs (cheaper than object.__new__).
        "__init__": object.__init__,
        # Served from its making (the app's call comes next) to its response's
        # end, which sets it False: one attribute set a request fewer.
        "_serving": True,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    if not settings.lock:  # no record of these sessions ever takes one
        shared["release_lock"] = _holds_no_lock
    else:  # nothing releases a lock taken after the middleware's release
        shared["_settings_after_lock"] = dataclasses.replace(settings, lock=False)
    bound: Callable[[], Any] = type(cls.__name__, (cls,), shared)
    return bound


def for_request(bound: Callable[[], Any], cookie_header: str | None) -> Any:
    """A session of ``bound`` (a class :func:`bound_factory` made) for a
    request's ``Cookie`` header (None: none). The middleware's request path
    spells this out (see ``handling``), one call fewer."""
    session = bound()
    session._key_source = cookie_header  # parsed on first use
    # Every response reads these two: an instance's own attribute is
    # read faster than a class default (CPython specializes the former).
    session.accessed = session.modified = False
    return session


def _holds_no_lock(session: Any) -> None:
    """``release_lock`` of a middleware whose settings take no lock: nothing to do."""


def record_factory(
    store: Store, serializer: Serializer
) -> Callable[[Any], SessionRecord]:
    """The ``_new_record`` method of the sessions of ``store`` and ``serializer``
    (one middleware's: see ``session_factory``), which makes a session's
    record before it opens or creates one: no key, nothing stored.

    The two are its closure's, read faster than a session's class
    attributes (see ``offered_keys.keys_parser``); the settings are the
    session's own (a locking middleware's change once its lock is released).
    """

    def new_session_record(session: Any) -> SessionRecord:
        """The session's record, made bare (it has no ``__init__``): a Python
        ``__init__`` run through the class call cost each request that loads
        a session about 0.8K instructions more than setting the attributes."""
        record = SessionRecord()
        record.store, record.serializer = store, serializer
        record.settings = session._settings  # the rest: the class's defaults
        return record

    return new_session_record
