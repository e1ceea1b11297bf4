"""MemcachedStore's request lock (``lock = true``): an item added next to
the record (its name plus ``:lock``), on the record's own server, judged by
its own header like a record."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ..errors import LockTimeout, StoreUnavailable
from ._keptlocks import KeptTokens
from ._lockwaits import wait_for_lock
from ._memcached_items import CLOCK_MARGIN, memcached_expire
from ._shared import LOCK_SUFFIX, pack, unpack
from .base import now

if TYPE_CHECKING:
    from ..logthrottle import ThrottledWarning

__all__ = ["MemcachedLock"]


class MemcachedLock:
    """The request lock of :class:`~.memcached.MemcachedStore` (a mixin)."""

    if TYPE_CHECKING:  # provided by MemcachedStore

        def _name(self, session_key: str) -> str: ...
        def _call_beside(
            self, record: str, command: str, name: str, *args: Any
        ) -> Any: ...

        _unreleased: KeptTokens[bytes]
        _warn_unreleased: ThrottledWarning

    @contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold an item added under the record's name plus ``:lock``, on the
        record's own server.

        The item carries its ``expires_at`` like a record and is taken over
        once that has passed, so a holder that dies loses the lock after
        exactly ``ttl``; memcached reclaims the item a little later.
        """
        record = self._name(session_key)
        name, token = record + LOCK_SUFFIX, secrets.token_hex(16).encode()
        try:
            wait_for_lock(
                lambda: self._take_lock(record, name, token, ttl),
                timeout,
                (id(self), name),
            )
        except LockTimeout:
            raise
        except StoreUnavailable:
            # A take whose reply was lost or late may have stored the item (a
            # stalled server runs it when it wakes): released at the next
            # taking, not now, when the server would keep this request waiting
            # for another timeout.
            self._unreleased.keep(name, token, now() + ttl)
            raise
        except BaseException:
            # Cut short by an interrupt (a timeout around the request, a
            # signal): the item may be stored, and would lock the session.
            with suppress(StoreUnavailable):
                self._release(record, name, token)
            raise
        try:
            yield
        finally:
            try:
                self._unlock(record, name, token, ttl)
            except BaseException:
                # Cut short by an interrupt (a timeout around the request, a
                # signal): once more, or the item would lock the session for ttl.
                with suppress(StoreUnavailable):
                    self._release(record, name, token)
                raise

    def _take_lock(self, record: str, name: str, token: bytes, ttl: float) -> bool:
        moment = now()
        value = pack(token, moment + ttl)
        expire = memcached_expire(moment + ttl, moment)
        if expire is None:  # a ttl too short to move the clock
            expire = CLOCK_MARGIN
        if self._call_beside(record, "add", name, value, expire):
            self._unreleased.drop(name)
            return True
        held, cas = self._call_beside(record, "gets", name)
        if held is None:  # released meanwhile: the next poll adds it
            return False
        holder = unpack(held)
        if holder is not None and holder[0] == token:
            return True  # ours: an add run again after its reply was lost
        # One this store could not release (its server stalled, or the reply
        # was lost) would lock the session for ttl: taken over.
        left = self._unreleased.of(name)
        if holder is not None and holder[1] > now() and holder[0] not in left:
            self._unreleased.drop(name)  # a live holder's: none of ours
            return False
        # The holder's time is up (or the item is not ours): take it over.
        if not self._call_beside(record, "cas", name, value, cas, expire):
            return False
        self._unreleased.drop(name)
        return True

    def _unlock(self, record: str, name: str, token: bytes, ttl: float) -> None:
        """Remove the lock item if it is still ours; failures are only logged
        (they must not mask the request's error), and the lock is released
        at this store's next taking of it, until it expires by itself.
        Tokens of the takings that failed after it while its server stalled
        are kept beside it: one of them may be the lock's."""
        try:
            self._release(record, name, token)
        except StoreUnavailable:
            self._warn_unreleased("%r: could not release the lock %s", self, name)
            self._unreleased.keep(name, token, now() + ttl)

    def _release(self, record: str, name: str, token: bytes) -> None:
        held, cas = self._call_beside(record, "gets", name)
        holder = unpack(held)
        if holder is not None and holder[0] == token:  # unless taken over
            self._call_beside(record, "cas", name, b"", cas, -1)
