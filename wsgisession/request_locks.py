"""The request lock of ``lock = true`` as one request holds it.

A request that the app makes to itself in the thread that serves the
session's request (an internal sub-request with the browser's cookie,
Flask's test client in a view) runs inside the outer request, which holds
the lock and waits for it: taking the lock again waited out
``lock_timeout`` and failed. It holds the outer request's lock instead,
and its save merges by key as any save does. Requests of other threads
and of other greenlets still wait: a gevent or eventlet server whose
``threading`` is not patched (``patch_all(thread=False)``) runs many
requests in one thread, and they shared one lock, two increments of a
session counting once.

A holder whose lock has passed ``lock_ttl`` may have lost it to a waiter,
which then ran alongside; its save merged by key with that one's, the
last save winning a key both changed. The release says so, once a minute
at most (a client can keep a request slow).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .logthrottle import ThrottledWarning
from .stores.base import Store

__all__ = ["take_request_lock"]

logger = logging.getLogger(__name__)
_warn_overran = ThrottledWarning(logger)

#: The locks requests hold now, by store, session key and what runs the
#: request (see :func:`_running`); weakly, so that a request a server dropped
#: without ``close()`` leaves none here.
_HOLDERS: weakref.WeakValueDictionary[tuple[int, str, object], HeldLock] = (
    weakref.WeakValueDictionary()
)
#: What a request whose thread already holds the lock holds: nothing more.
_HELD_BY_OUTER_REQUEST: AbstractContextManager[None] = nullcontext()


class HeldLock(AbstractContextManager[None]):
    """A store's request lock, taken, and known to the thread (or greenlet)
    that took it."""

    def __init__(self, store: Store, session_key: str, ttl: float) -> None:
        self.ttl = ttl
        self.name = (id(store), session_key, _running())
        self.store_lock: AbstractContextManager[Any] | None = None
        self.taken_at = 0.0

    def take(self, store: Store, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the store's lock (LockTimeout)."""
        _, session_key, _ = self.name
        store_lock = store.lock(session_key, timeout, self.ttl)
        store_lock.__enter__()
        self.store_lock, self.taken_at = store_lock, time.monotonic()
        _HOLDERS[self.name] = self

    def lasts(self) -> bool:
        """Whether it is still held, and not past ``lock_ttl``."""
        return (
            self.store_lock is not None and time.monotonic() - self.taken_at < self.ttl
        )

    def __exit__(self, *exc_info: object) -> None:
        store_lock, self.store_lock = self.store_lock, None
        if store_lock is None:
            return
        if _HOLDERS.get(self.name) is self:
            _HOLDERS.pop(self.name, None)
        held = time.monotonic() - self.taken_at
        store_lock.__exit__(None, None, None)
        if held >= self.ttl:
            _warn_overran(
                "a request held its session's lock for %.1f s, past lock_ttl "
                "(%g s): another request of the session may have taken it over "
                "and run meanwhile; their saves were merged by key (the last "
                "save wins a key both changed). Raise lock_ttl above your "
                "longest request, or keep long requests from using the session",
                held,
                self.ttl,
            )


def take_request_lock(
    store: Store, session_key: str, timeout: float, ttl: float
) -> AbstractContextManager[None]:
    """The request lock of ``session_key``, taken (waiting up to ``timeout``
    seconds), or nothing more if an outer request of this thread (or
    greenlet) holds it."""
    outer = _HOLDERS.get((id(store), session_key, _running()))
    if outer is not None and outer.lasts():
        return _HELD_BY_OUTER_REQUEST
    lock = HeldLock(store, session_key, ttl)
    lock.take(store, timeout)
    return lock


def _running() -> object:
    """What runs this code: its greenlet once greenlet is loaded (under gevent
    or eventlet the requests of a thread are greenlets, whether or not
    ``threading`` was patched), else its thread. A thread's main greenlet is
    named by its thread, so the name stays when greenlet is first loaded
    during a request (an app's late import of SQLAlchemy). The object, not
    its id: a thread's or greenlet's id goes to a new one once it ends."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is not None:
        current = greenlet.getcurrent()
        if current.parent is not None:  # not a thread's main greenlet
            return current
    return threading.current_thread()
