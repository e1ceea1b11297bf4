"""The SQLite store's connections: one per thread, to the file at the path.

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
the process too (the statement goes on with a freed handle), so each
thread uses its connection under that connection's lock, which a closer
takes first (:meth:`Connections.run`); :meth:`Connections.close` too.
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

from ._flock import directory_locked
from ._shared import MAX_SQLITE_WAIT
from ._sqlitefiles import check_owner
from ._sqliteshared import SharedFile, shared_file

__all__ = ["Connections"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.sqlite")

_RECHECK = 1.0  # seconds between checks of the file before reads
_OPEN_TRIES = 3  # the file may be replaced while a connection opens

#: ``set_up(connection)``: make the tables; runs on every new connection.
SetUp = Callable[[sqlite3.Connection], None]
Identity = tuple[int, int]
T = TypeVar("T")


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot).

    The connection of a thread that ended (or of a store dropped unclosed)
    is closed with the thread's storage (:class:`_Held`); one collected
    open all the same (its set-up failed) is closed here, as an
    ``sqlite3.Connection`` always was, but on purpose: Python 3.13 warns
    (ResourceWarning) of one collected open.
    """

    def __del__(self) -> None:
        with contextlib.suppress(sqlite3.ProgrammingError):  # it never opened
            self.close()


class _Held:
    """A thread's connection, kept in its thread-local storage: closed when
    that storage goes (the thread ended, or the store was dropped), in the
    process that opened it only (never a forked child's copy). A dropped
    connection would wait for the cycle collector instead (on Python 3.11
    it refers to itself through its statement cache), with the database and
    its ``-wal`` open: forever with the collector disabled."""

    __slots__ = (
        "__weakref__", "closed", "connection", "file", "identity", "lock", "pid",
    )  # fmt: skip

    def __init__(
        self, connection: _Connection, identity: Identity | None, file: SharedFile
    ) -> None:
        self.connection = connection
        self.identity = identity  # of the file it opened
        self.file = file  # the path's entry, kept while a connection to it is
        self.pid = os.getpid()
        self.lock = threading.Lock()  # held by its thread while it uses it
        self.closed = False

    def close(self) -> None:
        """Close the connection once its thread is done with the statement
        (or transaction) it runs, if any. An opener of a replaced file that
        calls this meanwhile returns once the connection is closed: see
        :meth:`Connections._forget`."""
        with self.lock:
            self.closed = True
            with contextlib.suppress(sqlite3.Error):  # nothing to tell anyone
                self.connection.close()

    def __del__(self, getpid: Callable[[], int] = os.getpid) -> None:
        if getpid() == self.pid:
            with contextlib.suppress(sqlite3.Error):  # nothing to tell anyone
                self.connection.close()


def _identity(path: str) -> Identity | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class Connections:
    """This store's connections, one per thread, checked against the file.

    ``close()`` closes every thread's connection of this store, not another
    store's (connections of threads that ended are closed as the thread's
    storage goes: see :class:`_Held`); a thread opens a new one on its next
    use. An opener of a replaced file closes every store's connections to
    the old one (:mod:`._sqliteshared`).
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
        self._local = threading.local()
        self._open: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._generation = 0
        self._pid = os.getpid()

    def run(self, step: Callable[[sqlite3.Connection], T], write: bool) -> T:
        """``step(connection)`` on this thread's connection to the file now at
        the path, which no other thread closes while the step runs."""
        while True:
            held = self._held(write)
            with held.lock:
                if not held.closed:  # else closed meanwhile: open another
                    return step(held.connection)

    @contextlib.contextmanager
    def holding(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for a block (a transaction), which no
        other thread closes meanwhile, as :meth:`run` for a function."""
        while True:
            held = self._held(write=True)
            with held.lock:
                if not held.closed:
                    yield held.connection
                    return

    def get(self, write: bool) -> sqlite3.Connection:
        """This thread's connection to the file now at the path."""
        return self._held(write).connection

    def _held(self, write: bool) -> _Held:
        if self._pid != os.getpid():  # never use a connection across fork()
            self._local, self._open = threading.local(), weakref.WeakSet()
            self._pid = os.getpid()
        local = self._local
        held: _Held | None = getattr(local, "held", None)
        if (
            held is not None
            and not held.closed
            and local.generation == self._generation
        ):
            if not write and time.monotonic() < local.next_check:
                return held
            if _identity(self.path) == held.identity:
                local.next_check = time.monotonic() + _RECHECK
                return held
        # Another file at the path: _connect() closes ``held`` (kept until then).
        local.held = None
        return self._connect(local)

    def file_changed(self) -> bool:
        """After a failure: whether the path holds another file (then let go
        of this thread's connection: the next opens the new file)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or _identity(self.path) == held.identity:
            return False
        self._forget()
        return True

    def _forget(self) -> None:
        """Close this thread's connection, if it has one.

        It leaves the file's connections only once closed: an opener of the
        new file meanwhile finds it there and waits for its close. Closed
        after that opener set up its connection, the last connection to the
        old file let go of the ``-shm`` file, and with it every lock of the
        process on it (POSIX locks are the process's): another process then
        cut it back under the new file's connections (SIGBUS).
        """
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.close()
            with self._guard:
                self._open.discard(held)
            with held.file.guard:
                held.file.open.discard(held)

    def close(self) -> None:
        """Close every thread's connection, each once its thread is done with
        it; each thread reopens on next use."""
        with self._guard:
            self._generation += 1
            helds, self._open = list(self._open), weakref.WeakSet()
        if self._pid == os.getpid():
            for held in helds:
                held.close()  # first, as in _forget()
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

    def _connect(self, local: threading.local) -> _Held:
        self._prepare_directory(os.path.dirname(self.path))
        file = shared_file(self.path)
        with file.opening:  # no other thread, of any store, opens meanwhile
            conn, identity = self._open_path(file)
            # Among the connections the next opener of a replaced file
            # closes before it lets go: one opening after it would not see it.
            held = _Held(conn, identity, file)
            with file.guard:
                file.open.add(held)
            with self._guard:
                self._open.add(held)
                local.generation = self._generation
        local.held = held
        local.next_check = time.monotonic() + _RECHECK
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
            identity = self._create_file()
            self._close_others_than(file, identity)
            check_owner(self.path)  # made by someone else before the app ran?
            conn = sqlite3.connect(
                self.path,
                timeout=min(self.busy_timeout, MAX_SQLITE_WAIT),
                isolation_level=None,
                check_same_thread=False,  # used by one thread; closed by close()
                factory=_Connection,
            )
            if _identity(self.path) != identity:  # replaced as it opened
                conn.close()  # before any statement: no -shm mapped yet
                continue
            try:
                self._set_up(conn)
            except BaseException:
                conn.close()
                raise
            if _identity(self.path) == identity:
                return conn, identity
            conn.close()  # replaced while it was set up: open the new one
        raise sqlite3.OperationalError(
            f"the database file was replaced each of the {_OPEN_TRIES} times "
            "a connection to it opened"
        )

    def _create_file(self) -> Identity | None:
        """Create the file (mode 0600; SQLite would use 0644) if it is missing.

        A missing file with its ``-wal`` and ``-shm`` still there means a
        removed database: those belong to it and would break the new one,
        so they go first. Processes take turns on the directory's lock.
        """
        directory = os.path.dirname(self.path)
        identity = _identity(self.path)
        if identity is not None:
            return identity
        with directory_locked(directory):
            if _identity(self.path) is None:
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path + suffix)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            return _identity(self.path)
