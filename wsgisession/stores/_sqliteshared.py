"""What the SQLite stores of one process share per database file: the lock
that lets one of their connections open at a time, and every store's open
connections to that file.

SQLite maps a database's ``-shm`` file once per database inode in a
process, and its POSIX locks on the ``-shm`` are the process's. A
connection to a file put in place of the database, opened while another
connection of the process still maps the old file's ``-shm``, sees no
other lock on it and cuts it back: SIGBUS in the old connection's thread.
So an opener closes the old file's connections of every store of the
process, not only its own store's: two stores of one file are easily
made (an app factory called twice, two Paste filters, a job's store
beside the app's). Kept per process: a forked child starts with no entry
(its parent's connections are not its to close), found by the process id
rather than an ``os.register_at_fork`` hook, which a server forking from
C (uWSGI without ``lazy-apps``) never runs. Kept weakly: a file's entry
goes with the last connection to it.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["SharedFile", "shared_file"]

#: A database file: its real directory's device and inode, and its name.
FileKey = tuple[int, int, str]


class SharedFile:
    """One database file's opening lock and the process's connections to it
    (those of every store; entries are ``_sqliteconn._Held``, each of which
    refers to its file's entry, keeping it alive)."""

    __slots__ = ("__weakref__", "guard", "open", "opening")

    def __init__(self) -> None:
        self.opening = threading.Lock()  # one opener at a time, every store
        self.guard = threading.Lock()  # over ``open``
        self.open: weakref.WeakSet[Any] = weakref.WeakSet()


class _Registry:
    """The files of one process that its SQLite stores have open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: weakref.WeakValueDictionary[FileKey, SharedFile] = (
            weakref.WeakValueDictionary()
        )


#: One registry per process id: a forked child's first lookup makes its own
#: (``setdefault`` is atomic, so its first threads agree on one) and drops
#: the parent's, whose lock another thread of the parent may have held.
_REGISTRIES: dict[int, _Registry] = {}


def shared_file(path: str) -> SharedFile:
    """The entry of the file SQLite opens at ``path`` (whose directory
    exists): found by the real path, as SQLite follows symlinks and puts the
    ``-shm`` beside the file they point to, and by its directory's device
    and inode, which name one directory whatever path leads there."""
    pid = os.getpid()
    registry = _REGISTRIES.get(pid)
    if registry is None:
        registry = _REGISTRIES.setdefault(pid, _Registry())
        for other in list(_REGISTRIES):  # a copy: other threads may add
            if other != pid:
                _REGISTRIES.pop(other, None)
    real = os.path.realpath(path)
    directory = os.stat(os.path.dirname(real))
    key = (directory.st_dev, directory.st_ino, os.path.basename(real))
    with registry.lock:
        entry = registry.files.get(key)
        if entry is None:
            entry = registry.files[key] = SharedFile()
        return entry
