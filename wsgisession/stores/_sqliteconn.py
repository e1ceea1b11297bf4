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
group or others can write (:func:`check_owner`), in a directory that
another user owns or that group or others can write (:func:`private_parent`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable

from ..errors import ConfigError
from ._flock import (
    directory_locked,
    foreign_owner,
    make_missing_directories,
    refuse_others_writing,
)
from ._shared import MAX_SQLITE_WAIT

__all__ = [
    "Connections",
    "check_owner",
    "create_private_database",
    "database_file",
    "private_parent",
    "refuse_shared_database",
    "refuse_shared_directory",
]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.sqlite")

_RECHECK = 1.0  # seconds between checks of the file before reads
_OPEN_TRIES = 3  # the file may be replaced while a connection opens

#: ``set_up(connection)``: make the tables; runs on every new connection.
SetUp = Callable[[sqlite3.Connection], None]
Identity = tuple[int, int]


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

    __slots__ = ("connection", "pid")

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.pid = os.getpid()

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


def check_owner(path: str) -> None:
    """Refuse (ConfigError, saying how to fix it) a database file that another
    user owns or that group or others can write: whoever can write it can
    plant a session, and be logged in as anyone. SQLite gives its ``-wal``
    and ``-shm`` files the database's owner and mode, and puts them beside
    the file a symlink at ``path`` points to: that file's directory too must
    be closed to others (:func:`refuse_shared_directory`)."""
    refuse_others_writing(path, os.stat(path), "SQLite database", "600")
    if os.path.islink(path):
        refuse_shared_directory(os.path.dirname(os.path.realpath(path)))


def database_file(name: str, uri: bool = False) -> str | None:
    """The file ``sqlite3.connect(name, uri=uri)`` opens, made absolute:
    ``name`` is a path, or with ``uri`` may be a ``file:`` URI. None for an
    in-memory or temporary database, which has no directory to plant in."""
    if uri and name[:5].lower() == "file:":
        parts = urllib.parse.urlsplit(name)
        options = urllib.parse.parse_qs(parts.query)
        if "memory" in options.get("mode", ()) or "memdb" in options.get("vfs", ()):
            return None
        name = urllib.parse.unquote(parts.path)
    return None if name in ("", ":memory:") else os.path.abspath(name)


def create_private_database(name: str, uri: bool = False) -> None:
    """Create the missing file ``sqlite3.connect(name, uri=uri)`` would make,
    with mode 0600: sqlite3 makes it 0644 (with umask 022), and every local
    user could read the sessions in it and in its journal, which SQLite
    gives the database's mode. A symlink at the path names the file made
    (SQLite follows it; ``O_EXCL`` alone would not). A URI that does not
    create (``mode=ro`` or ``rw``) is left alone, as is a file in the way
    or a missing directory: SQLite reports those."""
    path = database_file(name, uri)
    if path is None or _uri_mode(name, uri) in ("ro", "rw"):
        return
    with contextlib.suppress(OSError):
        made = os.open(
            os.path.realpath(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600
        )
        os.close(made)


def _uri_mode(name: str, uri: bool) -> str:
    """The ``mode`` option of a ``file:`` URI (the last one), or ''."""
    if not (uri and name[:5].lower() == "file:"):
        return ""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(name).query)
    return query.get("mode", [""])[-1]


def refuse_shared_database(path: str) -> None:
    """Before SQLite opens (or makes) the database at ``path``: refuse its
    directory, and that of the file a symlink there points to (existing or
    not: SQLite follows it), and the file if it exists, as
    :func:`private_parent` and :func:`check_owner` do. A missing directory
    is left to SQLite to report."""
    real = os.path.dirname(os.path.realpath(path))
    for directory in dict.fromkeys((os.path.dirname(path), real)):
        if os.path.isdir(directory):
            refuse_shared_directory(directory)
    if os.path.exists(path):
        check_owner(path)


def private_parent(directory: str) -> None:
    """Create the database's directory (mode 0700) if missing, and refuse
    (ConfigError) one that other users can create files in: another owner,
    others' write (sticky or not, as ``/tmp``), or a group's write unless the
    group is the user's own (a user private group, as with umask 002). They
    could put a ``-wal`` file beside the database while the app is stopped,
    which SQLite replays into it on the next open, planting a session
    whatever the database file's own owner and mode."""
    make_missing_directories(directory)
    refuse_shared_directory(directory)


def refuse_shared_directory(directory: str) -> None:
    """ConfigError for a database directory that other users can create
    files in (see :func:`private_parent`). A shared one (``/tmp``, a
    group's) is not to be taken over: the database moves out of it."""
    info = os.stat(directory)
    if info.st_mode & stat.S_IWOTH or (
        info.st_mode & stat.S_IWGRP and not _private_group(directory, info.st_gid)
    ):
        raise ConfigError(
            f"SQLite store directory {directory!r} has mode "
            f"{stat.S_IMODE(info.st_mode):o}: group or others can create files "
            "in it, such as a -wal file that SQLite replays into the database, "
            "planting a session; put the database in a directory of its own, "
            "which only this user can write (mode 700)"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise foreign_owner(
            directory, info.st_uid, "SQLite store directory", "700",
            ", or put the database in a directory of its own (its owner "
            "could plant a -wal file here, which SQLite replays into it)",
        )  # fmt: skip


def _private_group(directory: str, gid: int) -> bool:
    """Whether only this user can write to ``directory`` through its group
    ``gid``: the user's private group (named as the user, with no other
    member, nor another user whose primary group it is) and no access ACL,
    whose named users and groups the group bits (then the ACL's mask) hide."""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    if group.gr_name != user.pw_name or not set(group.gr_mem) <= {user.pw_name}:
        return False
    if any(o.pw_gid == gid and o.pw_uid != user.pw_uid for o in pwd.getpwall()):
        return False
    return not _has_access_acl(directory)


def _has_access_acl(path: str) -> bool:
    """Whether ``path`` has a POSIX access ACL (one beyond its mode bits)."""
    try:
        return "system.posix_acl_access" in os.listxattr(path)
    except (AttributeError, OSError):  # no xattrs here: no ACL either
        return False


class Connections:
    """This store's connections, one per thread, checked against the file.

    ``close()`` closes every thread's connection (connections of threads
    that ended are closed as the thread's storage goes: see :class:`_Held`);
    a thread opens a new one on its next use.
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
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._generation = 0
        self._pid = os.getpid()

    def get(self, write: bool) -> sqlite3.Connection:
        """This thread's connection to the file now at the path."""
        if self._pid != os.getpid():  # never use a connection across fork()
            self._local, self._open = threading.local(), weakref.WeakSet()
            self._pid = os.getpid()
        local = self._local
        held: _Held | None = getattr(local, "held", None)
        if held is not None and local.generation == self._generation:
            conn = held.connection
            if not write and time.monotonic() < local.next_check:
                return conn
            if _identity(self.path) == local.identity:
                local.next_check = time.monotonic() + _RECHECK
                return conn
            logger.warning(
                "SQLite database %s was removed or replaced; reopening it", self.path
            )
        self.drop()
        return self._connect(local)

    def file_changed(self) -> bool:
        """After a failure: whether the path holds another file (then drop ours)."""
        identity = getattr(self._local, "identity", None)
        if identity is None or _identity(self.path) == identity:
            return False
        self.drop()
        return True

    def drop(self) -> None:
        """Close this thread's connection, if it has one."""
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._guard:
                self._open.discard(held.connection)
            held.connection.close()

    def close(self) -> None:
        """Close every thread's connection; each thread reopens on next use."""
        with self._guard:
            self._generation += 1
            conns, self._open = list(self._open), weakref.WeakSet()
        if self._pid == os.getpid():
            for conn in conns:
                conn.close()

    def _connect(self, local: threading.local) -> _Connection:
        for _ in range(_OPEN_TRIES):
            identity = self._create_file()
            check_owner(self.path)  # made by someone else before the app ran?
            conn = sqlite3.connect(
                self.path,
                timeout=min(self.busy_timeout, MAX_SQLITE_WAIT),
                isolation_level=None,
                check_same_thread=False,  # used by one thread; closed by close()
                factory=_Connection,
            )
            try:
                self._set_up(conn)
            except BaseException:
                conn.close()
                raise
            if _identity(self.path) == identity:
                break
            conn.close()  # replaced while opening: open the new one
        with self._guard:
            self._open.add(conn)
            local.generation = self._generation
        local.held, local.identity = _Held(conn), identity
        local.next_check = time.monotonic() + _RECHECK
        return conn

    def _create_file(self) -> Identity | None:
        """Create the file (mode 0600; SQLite would use 0644) if it is missing.

        A missing file with its ``-wal`` and ``-shm`` still there means a
        removed database: those belong to it and would break the new one,
        so they go first. Processes take turns on the directory's lock.
        """
        directory = os.path.dirname(self.path)
        self._prepare_directory(directory)
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
