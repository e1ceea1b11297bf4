"""Who may write a SQLite database and its directory: the checks both SQLite
stores make before SQLite opens (or creates) the file; and the SQLite
store's creation of a missing file, private (:func:`create_database_file`).

Whoever can write the file can plant a session, and be logged in as
anyone; whoever can create files in its directory can plant a ``-wal``
file, which SQLite replays into the database when it opens it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import urllib.parse

from ..errors import ConfigError
from ._flock import (
    directory_locked,
    foreign_owner,
    make_missing_directories,
    refuse_others_writing,
)

__all__ = [
    "Identity",
    "check_owner",
    "create_database_file",
    "create_private_database",
    "database_file",
    "file_identity",
    "private_parent",
    "refuse_shared_database",
    "refuse_shared_directory",
]

#: A file's device and inode.
Identity = tuple[int, int]


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


def file_identity(path: str) -> Identity | None:
    """The device and inode of the file at ``path``; None if it is missing."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def create_database_file(path: str) -> Identity | None:
    """Create the file (mode 0600; SQLite would use 0644) if it is missing.

    A missing file with its ``-wal`` and ``-shm`` still there means a
    removed database: those belong to it and would break the new one,
    so they go first. Processes take turns on the directory's lock.
    """
    directory = os.path.dirname(path)
    identity = file_identity(path)
    if identity is not None:
        return identity
    with directory_locked(directory):
        if file_identity(path) is None:
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        return file_identity(path)
