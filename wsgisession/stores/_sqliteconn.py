"""The SQLite store's connections: a pool of them, to the file at the path.

A statement (or a transaction) takes an idle connection and puts it back
as it ends; at most :data:`KEEP_IDLE` stay open idle. A connection per
thread, kept in ``threading.local``, was one per greenlet under gevent or
eventlet (which patch ``threading.local``): 1,000 concurrent requests of a
gevent worker held 1,000 connections and 2,000 descriptors, and with the
usual limit of 1,024 descriptors 443-493 of them failed ("unable to open
database file"). Held only while a statement runs, connections are as
many as the statements running at once: one or two in a gevent worker.

A database file removed or replaced while the app runs must not swallow
writes: a connection keeps working on the file it opened, unlinked or
not. So each connection remembers the device and inode of the file it
opened and compares them with the path's before every write, at most once
per second before a read, and after a failed statement. A connection to a
file that is no longer at the path is closed, and the next one recreates
the file and its tables (set up on every new connection, never remembered
per process, so a new thread never trusts a setup done on a removed file).
Each new connection first refuses a file that another user owns or that
group or others can write (:func:`._sqlitefiles.check_owner`), in a directory that
another user owns or that group or others can write (:func:`._sqlitefiles.private_parent`).

Before a connection to a new file opens, the process's connections to a
removed or replaced one are closed, those of every store of the process
on that file (:mod:`._sqliteshared`): SQLite maps the ``-shm`` file per
database inode, and a connection to the new file, seeing no other
process's lock on it, cuts the ``-shm`` back while connections of the
same process to the old file still map it (SIGBUS: the worker killed).
The opener looks at the path again once SQLite has opened it, before any
statement (which maps the ``-shm``): a file put in place between its first
look and the open is not set up beside the connections it did not close.
Closing another thread's connection in the middle of a statement crashes
the process too (the statement goes on with a freed handle), so a
statement runs under its connection's lock, which a closer takes first
(:meth:`Connections.run`); :meth:`Connections.close` too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from ._shared import MAX_SQLITE_WAIT
from ._sqlitecheckpoint import CHECK_EVERY, WalBound
from ._sqlitefiles import Identity, check_owner, create_database_file, file_identity
from ._sqliteshared import SharedFile, shared_file

__all__ = ["Connections"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.sqlite")

_RECHECK = 1.0  # seconds between checks of the file before reads
#: Idle connections kept open for the next statements; more, opened for a
#: burst of statements running at once (threads), are closed as they end.
#: Enough for a threaded server's threads all waiting on SQLite's busy
#: handler at once (mod_wsgi's default is 15): past it, each statement
#: would open a connection of its own (0.5-2 ms).
KEEP_IDLE = 32
_OPEN_TRIES = 3  # the file may be replaced while a connection opens
#: What a statement on a removed or replaced file raises.
_FILE_ERRORS = (sqlite3.Error, OSError)

#: ``set_up(connection)``: make the tables; runs on every new connection.
SetUp = Callable[[sqlite3.Connection], None]
T = TypeVar("T")


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot).

    A connection dropped from the pool (or with a store dropped unclosed)
    is closed with its :class:`_Held`; one collected
    open all the same (its set-up failed) is closed here, as an
    ``sqlite3.Connection`` always was, but on purpose: Python 3.13 warns
    (ResourceWarning) of one collected open.
    """

    def __del__(self) -> None:
        with contextlib.suppress(sqlite3.ProgrammingError):  # it never opened
            self.close()


class _Held:
    """A pooled connection: closed when it is dropped (lost to an interrupt
    between two steps, or with its store), in the process that opened it
    only (never a forked child's copy). A dropped
    connection would wait for the cycle collector instead (on Python 3.11
    it refers to itself through its statement cache), with the database and
    its ``-wal`` open: forever with the collector disabled."""

    __slots__ = (
        "__weakref__", "closed", "connection", "file", "generation", "identity",
        "lock", "next_check", "pid",
    )  # fmt: skip

    def __init__(
        self,
        connection: _Connection,
        identity: Identity | None,
        file: SharedFile,
        generation: int,
    ) -> None:
        self.connection = connection
        self.identity = identity  # of the file it opened
        self.file = file  # the path's entry, kept while a connection to it is
        self.generation = generation  # of its store's pool: see close()
        self.next_check = time.monotonic() + _RECHECK
        self.pid = os.getpid()
        self.lock = threading.Lock()  # held while a statement uses it
        self.closed = False

    def close(self) -> None:
        """Close the connection once the statement (or transaction) it runs,
        if any, is done. An opener of a replaced file that calls this
        meanwhile returns once the connection is closed: see
        :meth:`Connections._drop`."""
        with self.lock:
            self.closed = True
            with contextlib.suppress(sqlite3.Error):  # nothing to tell anyone
                self.connection.close()

    def roll_back(self) -> None:
        """Roll back what a statement stopped between two of its steps (an
        interrupt as its rows were read) wrote. Its cursor, which the
        traceback keeps, holds the statement's transaction and SQLite's
        write lock open until it is collected; closed, the connection only
        ends then too (SQLite waits for its statements to be finalized)."""
        with self.lock, contextlib.suppress(sqlite3.Error):  # nothing open
            if self.closed:
                return
            if not self.connection.in_transaction:
                self.connection.execute("BEGIN")
            self.connection.execute("ROLLBACK")

    def __del__(self, getpid: Callable[[], int] = os.getpid) -> None:
        # Without the lock: no statement can be running. Its thread keeps
        # this in a frame, the idle list keeps idle ones, the open sets are
        # weak (test_sqlite_pool_faults pins it).
        if getpid() == self.pid:
            with contextlib.suppress(sqlite3.Error):  # nothing to tell anyone
                self.connection.close()


class Connections:
    """This store's connections, each checked against the file as it is taken.

    ``close()`` closes every connection of this store, not another store's
    (one in use as its statement ends); the next statement opens a new one.
    An opener of a replaced file closes every store's connections to the
    old one (:mod:`._sqliteshared`).
    """

    def __init__(
        self,
        path: str,
        busy_timeout: float,
        set_up: SetUp,
        prepare_directory: Callable[[str], None],
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._set_up = set_up
        self._prepare_directory = prepare_directory
        self._idle: list[_Held] = []  # list.pop() and append() are atomic
        self._open: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._generation = 0
        self._pid = os.getpid()
        self._wal = WalBound(path, min(busy_timeout, MAX_SQLITE_WAIT))
        self._writes = 0  # inline, not a call per write: see _sqlitecheckpoint

    def run(
        self,
        step: Callable[[sqlite3.Connection], T],
        write: bool,
        *,
        retry_if_replaced: bool = False,
    ) -> T:
        """``step(connection)`` on a connection to the file now at the path,
        which no other thread uses or closes while the step runs. A step that
        failed on a file removed or replaced meanwhile runs once more, on a
        connection to the new file, if ``retry_if_replaced`` (an error of the
        database or the file: an interrupt is never swallowed)."""
        retries = 1 if retry_if_replaced else 0
        while True:
            held = self._take(write)
            try:
                with held.lock:
                    if held.closed:  # closed meanwhile: open another
                        continue
                    result = step(held.connection)
                    if write:
                        self._writes += 1  # races only shift the next look
                        if not self._writes % CHECK_EVERY:
                            self._wal.check(held.connection)
            except BaseException as exc:
                replaced = self._after_failure(held, exc)
                if not (replaced and retries and isinstance(exc, _FILE_ERRORS)):
                    raise
                retries -= 1
                continue
            self._put_back(held)
            return result

    @contextlib.contextmanager
    def holding(self) -> Iterator[sqlite3.Connection]:
        """A connection for a block (a transaction), which no other thread
        uses or closes meanwhile, as :meth:`run` for a function."""
        while True:
            held = self._take(write=True)
            try:
                with held.lock:
                    if held.closed:
                        continue
                    yield held.connection
                    self._writes += 1
                    if not self._writes % CHECK_EVERY:
                        self._wal.check(held.connection)
            except BaseException as exc:
                self._after_failure(held, exc)
                raise
            self._put_back(held)
            return

    def _after_failure(self, held: _Held, error: BaseException) -> bool:
        """After a step failed on ``held``: keep it for the next statement if
        the file at the path is still the one it opened, else close it (not
        back in the pool, where another statement would take it). Closed too
        after an error not of the database (an interrupt, a bug), which may
        have stopped a statement between two steps: the next taker, of any
        thread, would inherit its open transaction. Whether the file was
        removed or replaced."""
        try:
            replaced = file_identity(self.path) != held.identity
        except OSError:  # the path cannot be looked at: nor reopened
            replaced = True
        cut_short = not isinstance(error, _FILE_ERRORS)
        if replaced or cut_short:
            self._drop(held, cut_short=cut_short)
        else:
            self._put_back(held)
        return replaced

    def _in_this_process(self) -> None:
        """In a forked child, start with no connections (never use one across
        fork()) and a guard of its own: a thread of the parent that held the
        guard at the fork (in :meth:`close`, opening a connection) left the
        child's copy held forever."""
        if self._pid != os.getpid():
            self._guard = threading.Lock()
            self._idle, self._open = [], weakref.WeakSet()
            self._pid = os.getpid()

    def _take(self, write: bool) -> _Held:
        """An idle connection to the file at the path, else a new one."""
        self._in_this_process()
        while True:
            try:
                held = self._idle.pop()
            except IndexError:
                return self._connect()
            if held.closed or held.generation != self._generation:
                continue  # closed by close(), or closing as its statement ends
            if not write and time.monotonic() < held.next_check:
                return held
            if file_identity(self.path) == held.identity:
                held.next_check = time.monotonic() + _RECHECK
                return held
            # Another file at the path: _connect() closes this one (kept
            # until then) and the other connections to the old file.
            return self._connect()

    def _put_back(self, held: _Held) -> None:
        """Keep ``held`` idle for the next statement, unless it was closed or
        renewed meanwhile (see :meth:`close`), idle ones are enough, or a
        transaction whose ROLLBACK failed is still open on it (it would hold
        the write lock for whoever takes it next)."""
        if held.closed or held.generation != self._generation:
            return
        if held.pid != os.getpid():
            return
        if len(self._idle) < KEEP_IDLE and not held.connection.in_transaction:
            self._idle.append(held)
            return
        self._drop(held)

    def _drop(self, held: _Held, *, cut_short: bool = False) -> None:
        """Close ``held`` and let it go.

        It leaves the file's connections only once closed: an opener of the
        new file meanwhile finds it there and waits for its close. Closed
        after that opener set up its connection, the last connection to the
        old file let go of the ``-shm`` file, and with it every lock of the
        process on it (POSIX locks are the process's): another process then
        cut it back under the new file's connections (SIGBUS).
        """
        if cut_short:  # see _after_failure()
            held.roll_back()
        held.close()
        with self._guard:
            self._open.discard(held)
        with held.file.guard:
            held.file.open.discard(held)

    def close(self) -> None:
        """Close every connection of this store, each once the statement it
        runs is done; the next statement opens a new one."""
        self._in_this_process()  # a child closes none of its parent's
        with self._guard:
            self._generation += 1
            helds, self._open = list(self._open), weakref.WeakSet()
            self._idle = []
        for held in helds:
            held.close()  # first, as in _drop()
            with held.file.guard:
                held.file.open.discard(held)

    def _close_others_than(self, file: SharedFile, identity: Identity | None) -> None:
        """Close the connections of this process, of every store, to a file
        other than ``identity`` (one removed or replaced) at the path of
        ``file``, each once its thread is done with it: before a connection
        to the new file opens (see the module)."""
        with file.guard:
            stale = [held for held in file.open if held.identity != identity]
            for held in stale:
                file.open.discard(held)
        if stale:
            logger.warning(
                "SQLite database %s was removed or replaced; closing %d "
                "connections to the old file and reopening it",
                self.path,
                len(stale),
            )
        for held in stale:
            held.close()

    def _connect(self) -> _Held:
        self._prepare_directory(os.path.dirname(self.path))
        file = shared_file(self.path)
        with file.opening:  # no other thread, of any store, opens meanwhile
            conn, identity = self._open_path(file)
            # Among the connections the next opener of a replaced file
            # closes before it lets go: one opening after it would not see it.
            with self._guard:
                held = _Held(conn, identity, file, self._generation)
                self._open.add(held)
            with file.guard:
                file.open.add(held)
        return held

    def _open_path(self, file: SharedFile) -> tuple[_Connection, Identity | None]:
        """A set-up connection to the file at the path, opened once this
        process's connections to any other file there are closed.

        The path is looked at again as soon as SQLite has opened it, before
        any statement maps its ``-shm``: a file put in place between the
        first look and the open would otherwise be set up while the
        connections to the file it replaced, not closed, still map it.
        """
        for _ in range(_OPEN_TRIES):
            identity = create_database_file(self.path)
            self._close_others_than(file, identity)
            check_owner(self.path)  # made by someone else before the app ran?
            conn = sqlite3.connect(
                self.path,
                timeout=min(self.busy_timeout, MAX_SQLITE_WAIT),
                isolation_level=None,
                check_same_thread=False,  # used by one thread; closed by close()
                factory=_Connection,
            )
            if file_identity(self.path) != identity:  # replaced as it opened
                conn.close()  # before any statement: no -shm mapped yet
                continue
            try:
                self._set_up(conn)
            except BaseException:
                conn.close()
                raise
            if file_identity(self.path) == identity:
                return conn, identity
            conn.close()  # replaced while it was set up: open the new one
        raise sqlite3.OperationalError(
            f"the database file was replaced each of the {_OPEN_TRIES} times "
            "a connection to it opened"
        )
