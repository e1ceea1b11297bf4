"""SQLiteStore's request lock: a row of ``wsgisession_locks`` with an expiry.

A lock row whose release failed (another connection held SQLite's write
lock past the release's wait, the file could not be opened) would hold its
session for ``lock_ttl`` (60 s by default): every request of it waiting
``lock_timeout`` and failing with LockTimeout meanwhile. So would one whose
taking an interrupt cut short after its INSERT, when dropping it failed
too. The store keeps the token of such a row, and the session's next taking
in this process takes that row over in the same statement that takes a free
one. Other processes, forked children included, wait for ``lock_ttl``.

A statement that raised never committed (SQLite runs it in this process;
no reply can be lost on the way), so a taking that failed keeps nothing:
its token would only push out the one of a row that holds the session.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..clock import now
from ..errors import StoreUnavailable
from ._keptlocks import KeptTokens
from ._lockwaits import wait_for_lock
from ._shared import (
    release_lock,
    undo_if_cut_short,
    undone_if_cut_short,
    unless_sqlite_busy,
)
from ._sqlitestatements import DROP_LOCK, take_lock
from .base import storage_key

__all__ = ["SQLiteLocks"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.sqlite")


class SQLiteLocks:
    """The request lock methods of :class:`~.sqlite.SQLiteStore` (a mixin)."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        _unreleased: KeptTokens[str]

        def _write(self, action: str, sql: str, params: tuple[object, ...]) -> int: ...

    @contextlib.contextmanager
    def _lock_row(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold a row of ``wsgisession_locks``; a waiter takes it over after
        ``ttl``, and this process's next taking at once if it stays behind."""
        name, token = storage_key(session_key), secrets.token_hex(16)

        def take() -> bool:
            return self._take_lock(name, token, ttl)

        def drop() -> None:
            self._write("unlock a session", DROP_LOCK, (name, token))

        def release() -> None:
            if not release_lock(drop, timeout):  # the row expires anyway
                logger.warning("%r: could not release a session lock", self)
                self._unreleased.keep(name, token, now() + ttl)

        undo = self._dropping_or_keeping(name, drop, token, ttl)
        undone_if_cut_short(
            lambda: wait_for_lock(unless_sqlite_busy(take), timeout, (id(self), name)),
            undo,
        )
        try:
            yield
        finally:
            try:  # here, not in undone_if_cut_short: see undo_if_cut_short
                release()
            except BaseException as exc:
                undo_if_cut_short(exc, undo)
                raise

    def _dropping_or_keeping(
        self, name: str, drop: Callable[[], None], token: str, ttl: float
    ) -> Callable[[], None]:
        """``drop``, for an interrupted taking or release; the token is kept
        if it fails (the row may be there, and would hold the session)."""

        def undo() -> None:
            try:
                drop()
            except StoreUnavailable:
                self._unreleased.keep(name, token, now() + ttl)
                raise

        return undo

    def _take_lock(self, name: str, token: str, ttl: float) -> bool:
        """Take lock ``name``: insert its row, or take over one whose holder's
        ttl ran out or that this process could not release."""
        kept = self._unreleased.of(name)
        moment = now()
        params = (name, token, moment + ttl, moment, *kept)
        taken = self._write("lock a session", take_lock(len(kept)), params) == 1
        # Taken over, or held by another token: no row is theirs any more.
        self._unreleased.forget(name, kept)
        return taken
