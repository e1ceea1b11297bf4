"""A bound on the SQLite store's ``-wal`` file under constant traffic.

SQLite's own checkpoints (PASSIVE, after each commit that leaves the log
past 1,000 pages) copy the log into the database only up to the oldest
reader's snapshot, and the log starts over only once all of it is
copied. Under steady traffic some request is nearly always reading (a
Python thread can hold its snapshot while it waits for the GIL between
two steps of its statement), so the log was seldom copied in full: with
four threads of one process it reached 604 MB beside a 9 MB database,
with sixteen 1.2 GB ("checkpoint starvation").

So every :data:`CHECK_EVERY` writes a connection looks at the file's
size, and past :data:`RESTART_SIZE` runs ``wal_checkpoint(RESTART)``:
it holds new writers back while the reads of old snapshots finish (new
reads go to the database), copies the rest, and the next write starts
the log over (the file is cut back to ``journal_size_limit``). It waits
at most :data:`RESTART_WAIT` ms; one still busy then (a connection that
keeps a read transaction open, a request stuck between two steps) is
skipped, never the request's error, and tried again once the file has
grown by half (so a reader held for hours costs a few tries, not one per
:data:`CHECK_EVERY` writes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from ..logthrottle import ThrottledWarning
from ._sqliteschema import WAL_SIZE_LIMIT

__all__ = ["CHECK_EVERY", "RESTART_SIZE", "RESTART_WAIT", "WalBound"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.sqlite")

#: Writes of a store (in one process) between two looks at the file's size.
CHECK_EVERY = 64
#: The ``-wal`` size past which the log is started over: above the size
#: SQLite cuts it back to, which it keeps between restarts of its own.
RESTART_SIZE = 2 * WAL_SIZE_LIMIT
#: Milliseconds a restart waits for readers and writers before it is skipped.
RESTART_WAIT = 100
_CHECKPOINTER_PAUSE = 0.001  # seconds between tries while another checkpoints
#: A WARNING (once a minute) when a restart is busy with the file this large.
_WARN_SIZE = 4 * RESTART_SIZE


class WalBound:
    """Starts the ``-wal`` file of ``path`` over when it grew past
    :data:`RESTART_SIZE` (see the module); one restart at a time per store."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.wal_path = f"{path}-wal"
        self._busy_timeout_ms = int(busy_timeout * 1000)  # restored after a wait
        self._running = threading.Lock()
        self._pid = os.getpid()
        self._next_size = 0  # past RESTART_SIZE: the size of the next try
        self._warn_held = ThrottledWarning(logger)

    def check(self, connection: sqlite3.Connection) -> None:
        """After every :data:`CHECK_EVERY` th committed write on the store's
        connections (counted by the caller, at the cost of an addition):
        restart the log through ``connection`` if it is past its bound.
        Never raises an error of the database or the file: the write is done."""
        if connection.in_transaction:
            return
        try:
            size = os.stat(self.wal_path).st_size
        except OSError:  # no log yet, or the file was removed
            return
        if size <= max(RESTART_SIZE, self._next_size):
            if size <= RESTART_SIZE:
                self._next_size = 0  # started over meanwhile
            return
        if self._pid != os.getpid():  # a parent's thread may have held the lock
            self._running, self._pid = threading.Lock(), os.getpid()
        if not self._running.acquire(blocking=False):  # another thread does it
            return
        try:
            self._restart(connection, size)
        finally:
            self._running.release()

    def _restart(self, connection: sqlite3.Connection, size: int) -> None:
        """``wal_checkpoint(RESTART)``, waiting at most :data:`RESTART_WAIT`;
        a busy one is tried again once the file has grown by half."""
        try:
            connection.execute(f"PRAGMA busy_timeout = {RESTART_WAIT}").close()
            try:
                busy, pages = _restart_when_free(connection)
            finally:
                timeout = f"PRAGMA busy_timeout = {self._busy_timeout_ms}"
                connection.execute(timeout).close()
        except sqlite3.Error as exc:  # the write it follows is committed
            logger.warning("could not start %s over: %s", self.wal_path, exc)
            busy, pages = True, -1
        if not busy:
            self._next_size = 0
            logger.debug(
                "%s: %d bytes, %d pages, started over", self.wal_path, size, pages
            )
            return
        self._next_size = size + size // 2
        logger.debug(
            "%s: %d bytes, a restart was busy; next past %d",
            self.wal_path, size, self._next_size,
        )  # fmt: skip
        if size >= _WARN_SIZE:
            self._warn_held(
                "%s is %d bytes and cannot start over: a connection keeps a "
                "read transaction open (a shell after BEGIN, a backup?)",
                self.wal_path, size,
            )  # fmt: skip


def _restart_when_free(connection: sqlite3.Connection) -> tuple[bool, int]:
    """Whether ``wal_checkpoint(RESTART)`` was busy, and the log's pages;
    tried again for up to :data:`RESTART_WAIT` while another connection
    checkpoints: SQLite runs one after every commit while the log is long,
    and tells a second checkpointer "busy" at once (no busy handler)."""
    deadline = time.monotonic() + RESTART_WAIT / 1000
    while True:
        row = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        busy, pages = bool(row[0]), int(row[1])
        if not busy or pages >= 0 or time.monotonic() >= deadline:
            return busy, pages
        time.sleep(_CHECKPOINTER_PAUSE)
