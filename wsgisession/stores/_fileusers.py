"""The file store's user indexes: one small file per user, listing record names.

``<root>/users/<user_storage_key(user)>`` holds a header line and then the
record names (``storage_key`` of each session id, never the id) of the
user's sessions, one a line. It is rewritten whole (a temporary file
renamed over it) under one of 256 lock files picked by the name's first
two hex digits, held across the index write and the record's creation so
that no concurrent pruning drops the entry of a session being created.
Files are opened without following symlinks, new ones with ``O_EXCL``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator

from ..keys import user_storage_key
from ._descriptor import Descriptor
from ._fileformat import write_whole
from ._filesweep import NameWalk, is_record_name
from ._flock import ShardLocks, make_private_dirs
from ._lockfile import open_new_file

__all__ = ["UserIndex", "UserIndexes"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.file")

_MAGIC = b"wsu1\n"
_DIRECTORY = "users"
_TEMP_PREFIX = ".tmp-"
# Non-blocking: a FIFO at an index's name reads as empty instead of hanging.
_O_READ = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


class UserIndex:
    """One user's index as read under its lock: ``names``, and :meth:`write`."""

    def __init__(self, indexes: UserIndexes, file_name: str, names: set[str]) -> None:
        self._indexes, self._file_name = indexes, file_name
        self.names = names
        self._read = frozenset(names)

    def write(self) -> None:
        """Store ``names`` if they changed (an empty index removes the file)."""
        if self.names != self._read:
            self._indexes.write(self._file_name, self.names)
            self._read = frozenset(self.names)


class UserIndexes:
    """The user indexes of the file store rooted at ``root``."""

    def __init__(self, root: str, locks: str) -> None:
        self.root = root
        self.directory = os.path.join(root, _DIRECTORY)
        self._locks = ShardLocks(os.path.join(locks, _DIRECTORY))
        self._walk = NameWalk(self.directory)

    def holding(
        self, user_id: str, timeout: float
    ) -> contextlib.AbstractContextManager[UserIndex]:
        """The user's index, its lock held until the block ends."""
        return self.holding_file(user_storage_key(user_id), timeout)

    def file_names(self) -> list[str]:
        """The names of every user's index file (for a full sweep)."""
        try:
            with os.scandir(self.directory) as entries:
                return [e.name for e in entries if is_record_name(e.name, e.name[:2])]
        except FileNotFoundError:
            return []

    def next_names(self, limit: int) -> list[str]:
        """The next ``limit`` names of the directory at most (index files and
        temporary files), going on where the previous call stopped: successive
        calls (the sweeps, which take turns) cover it, each a bounded part."""
        return self._walk.step(limit)

    def close_walk(self) -> None:
        """Drop the sweeps' place in the directory (they start again)."""
        self._walk.close()

    def remove_orphans(
        self, cutoff: float, timeout: float, names: list[str] | None = None
    ) -> None:
        """Remove the temporary files a writer killed meanwhile left, changed
        before ``cutoff`` (each under its index's lock: no writer is at it),
        among ``names`` (default: the whole directory)."""
        if names is None:
            try:
                with os.scandir(self.directory) as entries:
                    names = [e.name for e in entries]
            except FileNotFoundError:
                return
        for temp in [name for name in names if name.startswith(_TEMP_PREFIX)]:
            file_name = temp[len(_TEMP_PREFIX) :]
            if not is_record_name(file_name, file_name[:2]):
                continue
            path = os.path.join(self.directory, temp)
            with (
                self._locks.held(file_name[:2], timeout),
                contextlib.suppress(FileNotFoundError),
            ):
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)

    @contextlib.contextmanager
    def holding_file(self, file_name: str, timeout: float) -> Iterator[UserIndex]:
        """The index stored as ``file_name`` (from :meth:`file_names`), locked."""
        with self._locks.held(file_name[:2], timeout):
            yield UserIndex(self, file_name, self.read(file_name))

    def read(self, file_name: str) -> set[str]:
        """The record names in an index file; empty if it is missing or not ours."""
        path = os.path.join(self.directory, file_name)
        try:
            opened = Descriptor(path, _O_READ)
        except FileNotFoundError:
            return set()
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            logger.warning("ignoring a symlink at user index %s", path)
            return set()
        try:
            chunks = []
            while chunk := os.read(opened.fd, 65536):
                chunks.append(chunk)
        finally:
            opened.close()
        data = b"".join(chunks)
        if not data.startswith(_MAGIC):
            logger.warning("ignoring an unreadable user index %s", path)
            return set()
        lines = data[len(_MAGIC) :].decode("ascii", "replace").split("\n")
        return {name for name in lines if is_record_name(name, name[:2])}

    def write(self, file_name: str, names: set[str]) -> None:
        """Replace the index file atomically; remove it when ``names`` is empty."""
        path = os.path.join(self.directory, file_name)
        if not names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        temp = os.path.join(self.directory, _TEMP_PREFIX + file_name)
        made = self._create_temp(temp)
        try:
            try:
                write_whole(made.fd, _MAGIC + "\n".join(sorted(names)).encode("ascii"))
            finally:
                made.close()
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _create_temp(self, temp: str) -> Descriptor:
        try:
            return open_new_file(temp)
        except FileNotFoundError:  # the first index of this store
            make_private_dirs(self.root, self.directory)
        except FileExistsError:  # a crash's leftover, or a planted symlink
            os.unlink(temp)
        return open_new_file(temp)

    def close(self) -> None:
        """Close the lock files' descriptors; the next use reopens them."""
        self._locks.close()
