"""SQLStore's cleanup: ``clear_expired()`` in batches, and the middleware's
bounded ``sweep_expired()`` steps, each deleting the keys it found expired
if they still are (another sweep may have taken some).

They run on the connections of the requests (:class:`~._sqlrun.Runner`),
never on more: on an engine the store built, a cleanup counts among its
``MAX_OPEN`` connections, and waits for one as a request does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import now
from ._shared import waiting_out_sqlite_busy
from ._sqlrun import Dropped, compile_with_values
from .base import Progress

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import Engine

    from ._sqlrun import Compiled, Cursor, Runner
    from ._sqlschema import Tables

__all__ = ["BATCH", "SQLCleanup"]

T = TypeVar("T")

#: Rows per DELETE in clear_expired(): keeps each statement short.
BATCH = 1000


class SQLCleanup:
    """The cleanup methods of :class:`~.sql.SQLStore` (a mixin)."""

    if TYPE_CHECKING:  # provided by SQLStore
        _sql: dict[str, Compiled]
        _tables: Tables
        _base: Engine
        _runner: Runner
        _timeout: float

        def _run(self, action: str, work: Callable[..., T], *args: Any) -> T: ...

        def _execute(
            self, cursor: Cursor, name: str, params: dict[str, object]
        ) -> int: ...

        def _translate(self, action: str) -> AbstractContextManager[None]: ...

        def _ready(self) -> None: ...

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Delete expired rows in batches of ``BATCH`` (1000), each its own
        statement; on SQLite each waits out other writers past the busy
        timeout (a cron job beside busy workers), up to ten times ``timeout``."""
        moment = now()
        params = {"b_now": moment}
        self._patiently(
            lambda: self._run(
                "clear expired locks", self._execute, "locks_dead", params
            )
        )
        total = 0
        if progress is not None:  # an index range count
            total = self._patiently(
                lambda: self._run("count expired sessions", self._count_dead, moment)
            )
        removed = 0
        while True:
            found, count = self._patiently(lambda: self._delete_batch(moment, BATCH))
            removed += count
            if progress is not None:
                progress(removed, max(total, removed))
            if found < BATCH:  # not: count, less when another sweep took some
                return removed

    def _patiently(self, step: Callable[[], T]) -> T:
        """``step()`` of a cleanup, waiting out SQLite's busy writers (see
        :func:`._shared.waiting_out_sqlite_busy`); at once on other databases."""
        return waiting_out_sqlite_busy(step, self._timeout)

    def _count_dead(self, cursor: Cursor, moment: float) -> int:
        row = cursor.execute(self._sql["count_dead"], {"b_now": moment}).fetchone()
        return int(row[0])

    def sweep_expired(self, limit: int) -> int:
        """Delete at most ``limit`` expired records: one bounded step of cleanup.

        Request locks whose holder's ttl ran out go too (one row per
        session locked at the moment: a short DELETE).
        """
        if limit <= 0:
            return 0
        moment = now()
        _found, removed = self._delete_batch(moment, limit)
        self._run("clear expired locks", self._execute, "locks_dead", {"b_now": moment})
        return removed

    def _delete_batch(self, moment: float, limit: int) -> tuple[int, int]:
        """How many expired rows (up to ``limit``) were found, and how many of
        them deleted if still expired (fewer if another sweep took some).
        Run once more on a connection the server dropped; never again after
        a deadlock (the next sweep will)."""
        with self._translate("clear expired sessions"):
            self._ready()
            try:
                return self._runner.run(self._delete_found, moment, limit)
            except Dropped:
                return self._runner.run(self._delete_found, moment, limit)

    def _delete_found(
        self, cursor: Cursor, moment: float, limit: int
    ) -> tuple[int, int]:
        """Keys, then rows: portable, MySQL has no LIMIT in an IN subquery."""
        tables = self._tables
        found = cursor.execute(*self._once(tables.expired_keys(moment, limit)))
        keys = [row[0] for row in found.fetchall()]
        if not keys:
            return 0, 0
        texts = [key for key in keys if isinstance(key, str)]
        deleted = 0
        if texts:
            statement = tables.delete_expired(texts, moment)
            deleted += int(cursor.execute(*self._once(statement)).rowcount)
        # A key no store wrote (SQLite keeps a blob put there as it is):
        # written into the statement, it failed every sweep for good.
        for key in [key for key in keys if not isinstance(key, str)]:
            statement = _delete_one(tables, key, moment)
            deleted += int(cursor.execute(*self._once(statement)).rowcount)
        return len(keys), deleted

    def _once(self, statement: Any) -> tuple[Compiled, dict[str, object]]:
        return compile_with_values(statement, self._base)


def _delete_one(tables: Tables, key: object, moment: float) -> Any:
    """Delete the record of ``key``, bound, if it is still expired."""
    # Here, not at the top: the module is imported without the sql extra.
    from sqlalchemy import bindparam, delete

    sessions = tables.sessions
    return delete(sessions).where(
        sessions.c.key == bindparam("b_key", key), sessions.c.expires_at <= moment
    )
