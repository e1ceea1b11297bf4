"""SQLStore's request lock: a row of ``<table>_locks`` with an expiry.

Advisory locks (``pg_try_advisory_lock``, ``GET_LOCK``) belong to a
connection: a request holding one would pin a pooled connection for its
whole length and the lock would outlive ``lock_ttl`` as long as that
connection stays open. A row gives the same ``ttl`` semantics on every
database and pins nothing.

A lock row whose release failed (the database restarted, or refused
writes, as the request ended), or whose taking failed as its connection
dropped (its INSERT may have committed, only the reply lost), would hold its
session for ``lock_ttl`` (60 s by default): every request of it waiting
``lock_timeout`` and failing with LockTimeout meanwhile. The store keeps
its token and deletes that row by it at the session's next taking in this
process.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import now
from ..errors import StoreUnavailable
from ._lockwaits import wait_for_lock
from ._shared import (
    release_lock,
    undo_if_cut_short,
    undone_if_cut_short,
    unless_sqlite_busy,
)
from .base import storage_key

if TYPE_CHECKING:
    from ._keptlocks import KeptTokens
    from ._sqlrun import Compiled, Cursor, Runner

__all__ = ["SQLLocks"]

#: The SQL store's logger, which docs/deploying.rst names.
logger = logging.getLogger("wsgisession.stores.sql")

T = TypeVar("T")


class SQLLocks:
    """The request lock methods of :class:`~.sql.SQLStore` (a mixin)."""

    if TYPE_CHECKING:  # provided by SQLStore
        _sql: dict[str, Compiled]
        _runner: Runner
        _unreleased: KeptTokens[str]
        _reruns: int

        def _run(self, action: str, work: Callable[..., T], *args: Any) -> T: ...

        def _execute(
            self, cursor: Cursor, name: str, params: dict[str, object]
        ) -> int: ...

    @contextlib.contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold a row of ``<table>_locks``; a dead holder's row expires after ``ttl``."""
        name, token = storage_key(session_key), secrets.token_hex(16)
        params = {"b_key": name, "b_token": token}

        def take() -> bool:
            return self._take_lock(name, token, ttl)

        def drop() -> None:
            self._run("unlock", self._execute, "lock_drop", params)

        def release() -> None:
            if not release_lock(drop, timeout):  # the row expires anyway
                logger.warning("%r: could not release a session lock", self)
                self._unreleased.keep(name, token, now() + ttl)

        reruns = self._reruns
        try:
            undone_if_cut_short(
                lambda: wait_for_lock(
                    unless_sqlite_busy(take), timeout, (id(self), name)
                ),
                drop,
            )
        except StoreUnavailable:
            if self._reruns != reruns:  # a connection dropped: its INSERT may
                self._unreleased.keep(name, token, now() + ttl)  # committed anyway
            raise
        try:
            yield
        finally:
            try:  # here, not in undone_if_cut_short: see undo_if_cut_short
                release()
            except BaseException as exc:
                undo_if_cut_short(exc, drop)
                raise

    def _take_lock(self, name: str, token: str, ttl: float) -> bool:
        """Take lock ``name``. A row this store could not release is deleted
        by its token first: it would hold the session for ``ttl``."""
        if self._run("lock a session", self._take, name, token, ttl):
            return True
        left = self._unreleased.of(name)
        if not left:
            return False
        for kept in left:  # a failure raises, the tokens kept: the next tries
            params = {"b_key": name, "b_token": kept}
            self._run("unlock", self._execute, "lock_drop", params)
        self._unreleased.forget(name, left)
        return self._run("lock a session", self._take, name, token, ttl)

    def _take(self, cursor: Cursor, name: str, token: str, ttl: float) -> bool:
        """Insert the lock row, or take over one whose holder's ttl ran out."""
        moment = now()
        params = {
            "b_key": name,
            "b_token": token,
            "b_exp": moment + ttl,
            "b_now": moment,
        }
        if cursor.rowcount(self._sql["lock_take"], params) == 1:
            return True
        try:
            cursor.execute(self._sql["lock_insert"], params)
            return True
        except self._runner.integrity_error:  # held by someone else
            return False
