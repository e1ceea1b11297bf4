"""The file store on disk: its private directory, where each record file
lives, and how one is read, rewritten, replaced, created or removed.

The directory is trusted only if this process's user owns it, neither
group nor others can write to it and it is no symlink
(:func:`ensure_private_directory`); every operation checks that it is still
the same directory (:class:`PrivateDirectory`). The
record named ``name`` (a :func:`storage_key`) is the file
``<root>/<name[:2]>/<name>``: a shard directory per first two hex digits,
made (mode 0700) by the first write into it. The bytes of a record are in
:mod:`._fileformat`. Files are opened without following symlinks, new ones
with ``O_EXCL``. Failures stay ``OSError``: the store says what it was doing.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import math
import os
import stat
import tempfile

from .. import clock
from ..errors import ConfigError
from ._descriptor import Descriptor
from ._fileformat import decode, is_current, read_record, read_whole, write_whole
from ._filesweep import is_shard_name
from ._flock import make_missing_directories, make_private_dirs, refuse_others_writing
from ._lockfile import open_new_file

__all__ = [
    "HeldRecord",
    "PrivateDirectory",
    "RecordFiles",
    "default_path",
    "ensure_private_directory",
    "is_temp_name",
    "user_temp_path",
]

_TEMP_PREFIX = ".tmp-"
#: Seconds after its last change before a sweep treats a temporary file as
#: orphaned, or a file that holds no record as damaged: until then it may
#: still be being written.
_TEMP_MAX_AGE = 60.0
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # never open a planted symlink
# A FIFO at a record's name would block its open (and then its read) for
# good: opened non-blocking, it reads as empty, a file that holds no record.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_READ = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY | _O_NONBLOCK
_O_READ_WRITE = os.O_RDWR | _O_NOFOLLOW | _O_BINARY | _O_NONBLOCK
#: The most a rewrite in place writes: one page, which one ``pwrite`` either
#: writes whole or, in a process killed meanwhile, not at all.
_REWRITE_MAX = 4096
_CAN_REWRITE = hasattr(os, "pwrite")
# What opening a record to write raises when only reading it is allowed (a
# file restored read-only, a read-only mount): such a record is replaced.
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def is_temp_name(name: str) -> bool:
    """Whether ``name`` in a shard is a writer's temporary file."""
    return name.startswith(_TEMP_PREFIX)


def user_temp_path(name: str) -> str:
    """``<tempdir>/<name>-<uid>``: a default directory of this user's own, so
    that two users' apps on one host never share (or fight over) it."""
    user = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    return os.path.join(tempfile.gettempdir(), f"{name}-{user}")


def default_path() -> str:
    """The directory a ``FileStore()`` without a path uses:
    ``<tempdir>/wsgisession-files-<uid>``."""
    return user_temp_path("wsgisession-files")


def ensure_private_directory(path: str) -> None:
    """Create ``path`` (mode 0700) and refuse it if another user could plant files
    (see :func:`private_identity`)."""
    private_identity(path)


def private_identity(path: str) -> tuple[int, ...]:
    """Create ``path`` (mode 0700) and refuse it if another user could plant files;
    its :func:`identity`, for :class:`PrivateDirectory`.

    A symlink (another user may point it elsewhere once the app runs), a
    directory another user owns, or one that group or others can write to,
    lets them plant records (log in as anyone) or symlinks: ConfigError,
    saying how to fix it.
    """
    make_missing_directories(path)  # a symlink is left alone: refused below
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(
            f"session directory {path!r} is a symbolic link, which its owner can "
            "point elsewhere while the app runs: give the real directory's path"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    refuse_others_writing(
        path, info, "session directory", "700", ", or use a directory of your own"
    )
    return identity(info)


def identity(info: os.stat_result) -> tuple[int, ...]:
    """What tells a checked directory from one made or linked in its place:
    an inode number is soon used again, its owner and mode are not the same."""
    return info.st_dev, info.st_ino, info.st_uid, info.st_mode


class PrivateDirectory:
    """The store's directory, checked once, and again whenever it is not the
    same directory any more.

    Every operation asks :meth:`check` (one ``lstat``): a directory removed
    while the app runs (a temp cleaner) and made again by someone else, or
    replaced by a symlink, is refused rather than used, since every file
    path goes through it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity = private_identity(path)

    def check(self) -> None:
        """Raise ConfigError if the directory is not this process's alone any more."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            info = None
        if info is None or identity(info) != self.identity:
            self.identity = private_identity(self.path)


class RecordFiles:
    """The record files under the store directory ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._prefix = os.path.join(root, "")  # ends with a separator

    def shard(self, shard: str) -> str:
        """The directory of a shard (two hex digits)."""
        return os.path.join(self.root, shard)

    def shards(self) -> list[str] | None:
        """The names of the shard directories, sorted; None if ``root`` is gone."""
        try:
            with os.scandir(self.root) as entries:
                return sorted(e.name for e in entries if is_shard_name(e.name))
        except FileNotFoundError:
            return None

    def names(self, shard: str) -> list[str]:
        """The names of the files in a shard's directory."""
        with os.scandir(self.shard(shard)) as entries:
            return [entry.name for entry in entries]

    def path(self, name: str) -> str:
        """The file of the record ``name``."""
        return f"{self._prefix}{name[:2]}{os.sep}{name}"  # os.path.join, faster

    def read(self, path: str) -> tuple[bytes | None, float]:
        """``(payload, expires_at)`` of the record file at ``path`` (from
        :meth:`path`), expired or not.

        A file that holds no record gives ``(None, -inf)`` (it can never
        load), or ``(None, inf)`` while it changed within the last minute:
        a new record may still be being written (see :meth:`create`), and a
        read without the shard's lock that overlapped a rewrite in place
        lands here too, the rewrite having changed the file's time first.

        Raises ``FileNotFoundError`` if there is no such file, ``OSError``
        with ``errno.ELOOP`` if a symlink is in its place.
        """
        opened = Descriptor(path, _O_READ)
        try:
            record = read_record(opened.fd)
            if record is not None:
                return record
            young = os.fstat(opened.fd).st_mtime > clock.now() - _TEMP_MAX_AGE
        finally:
            opened.close()
        return None, math.inf if young else -math.inf

    def examine(self, name: str) -> tuple[bytes | None, float] | None:
        """:meth:`read` of the record ``name``; None if gone, ``(None, -inf)``
        for a symlink in its place."""
        try:
            return self.read(self.path(name))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink: never a record
                return None, -math.inf
            raise

    def hold(self, path: str) -> HeldRecord:
        """Open the record file at ``path`` to read and then rewrite it, under
        its shard's lock (no writer runs, so one read). Raises as
        :meth:`read` does. A file this process may not write is read only,
        and :meth:`HeldRecord.rewrite` declines it; one that is no regular
        file (a FIFO) is not read: it holds no record, and is replaced."""
        try:
            opened = Descriptor(path, _O_READ_WRITE)
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE:
                raise
            opened = Descriptor(path, _O_READ)
            writable = False
        else:
            writable = _CAN_REWRITE
        try:
            info = os.fstat(opened.fd)
            if not stat.S_ISREG(info.st_mode):  # a FIFO: no record, replaced
                return HeldRecord(opened, None, b"", False)
            data = read_whole(opened.fd)
            record = decode(data)
            writable = (
                writable
                and record is not None
                and is_current(data)
                and info.st_nlink == 1  # one name: a hard link would change too
            )
        except BaseException:
            opened.close()
            raise
        return HeldRecord(opened, record, data, writable)

    def create(self, name: str, data: bytes) -> bool:
        """Write ``data`` as the new record ``name``; False if the name is taken.

        The file is made with ``O_EXCL``, so it never replaces another, and
        written with no lock: until its one write ends it is empty or
        partial. Only its creator knows the session's id then (or, with
        ``reserve_key()``, the response it sent early), and sweeps leave
        such a file alone for a minute (:meth:`examine`). A file a
        sweep removed meanwhile raises ``OSError`` rather than passing for
        a saved record.
        """
        path = self.path(name)
        try:
            made = self._create_new(path, name)
        except FileExistsError:
            return False
        try:
            write_whole(made.fd, data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        else:
            removed = os.fstat(made.fd).st_nlink == 0
        finally:
            made.close()
        if removed:
            raise FileNotFoundError(errno.ENOENT, "new session file removed", path)
        return True

    def replace(self, name: str, data: bytes) -> None:
        """Replace the record atomically: write a temporary file, then rename it.

        Writers of one record hold its shard's lock, so the temporary file
        can have a fixed name. Whatever is found at that name (left by a
        crash, or planted) is removed, never written through.
        """
        directory = self._prefix + name[:2]
        temp = f"{directory}{os.sep}{_TEMP_PREFIX}{name}"
        made = self._create_temp(temp, directory)
        try:
            try:
                write_whole(made.fd, data)
            finally:
                made.close()
            os.replace(temp, self.path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def unlink(self, name: str) -> bool:
        """Remove the record's file; whether there was one."""
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return False
        return True

    def remove_orphans(self, shard: str, temp_names: list[str], moment: float) -> None:
        """Remove the temporary files of a shard that a crashed writer left,
        once they are 60 seconds old."""
        for name in temp_names:
            path = os.path.join(self.shard(shard), name)
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < moment - _TEMP_MAX_AGE:
                    os.unlink(path)

    def _create_new(self, path: str, name: str) -> Descriptor:
        try:
            return open_new_file(path)
        except FileNotFoundError:  # the first record of this shard
            self._make_shard(self._prefix + name[:2])
        return open_new_file(path)

    def _create_temp(self, temp: str, directory: str) -> Descriptor:
        try:
            return open_new_file(temp)
        except FileNotFoundError:  # the first record of this shard
            self._make_shard(directory)
        except FileExistsError:  # a crash's leftover, or a planted symlink
            os.unlink(temp)
        return open_new_file(temp)

    def _make_shard(self, directory: str) -> None:
        """Create a shard's directory (mode 0700). The store's own directory
        was checked (and made if missing) just before: it is made here only
        if ``mkdir`` says it is gone again, not tried first every time."""
        try:
            make_private_dirs(directory)
        except FileNotFoundError:  # removed since the check
            make_private_dirs(self.root, directory)


class HeldRecord:
    """A record file held open under its shard's lock, from its read to its rewrite.

    A record of at most one page is rewritten in place: one ``pwrite`` at
    its start, and a ``ftruncate`` if it got shorter. Renaming a new file
    over it costs the file system about ten times as much (on ext4 the
    rename also starts writing the new file out). Readers, which take no
    lock, may see the write half done; the record's checksum tells them to
    read again under the lock. Only a file of the
    current format, which has the checksum, with one name, is rewritten.
    """

    __slots__ = ("data", "file", "record", "writable")

    def __init__(
        self,
        file: Descriptor,
        record: tuple[bytes, float] | None,
        data: bytes,
        writable: bool,
    ) -> None:
        self.file = file  #: closed by close(), or as this object is collected
        #: ``(payload, expires_at)``, or None if the file does not hold a record.
        self.record = record
        #: The file's bytes as read: put back if a rewrite is cut short.
        self.data = data
        #: Whether :meth:`rewrite` may write this file in place.
        self.writable = writable

    @property
    def size(self) -> int:
        return len(self.data)

    def rewrite(self, data: bytes) -> bool:
        """Write ``data`` over the record in place if one write can; whether it did.

        A write cut short (a file size limit, ``EFBIG``) would leave a
        record that fails its checksum: the bytes read are written back and
        it returns False, for the caller to replace the file, which fails
        with the reason and leaves the record as it was.
        """
        if not self.writable or len(data) > _REWRITE_MAX:
            return False
        written = os.pwrite(self.file.fd, data, 0)
        if written != len(data):
            self._restore(written)
            return False
        if len(data) < self.size:  # the record is saved: the tail is ignored
            with contextlib.suppress(OSError):
                os.ftruncate(self.file.fd, len(data))
        return True

    def _restore(self, written: int) -> None:
        """Put back the bytes read, over the ``written`` bytes of a rewrite cut
        short (no longer than the file now is, so never cut short itself)."""
        self.writable = False
        if os.pwrite(self.file.fd, self.data, 0) != self.size:
            raise OSError(errno.EIO, "session file written in part")
        if written > self.size:
            os.ftruncate(self.file.fd, self.size)

    def close(self) -> None:
        """Close the file (again: nothing)."""
        self.file.close()

    def __repr__(self) -> str:
        return f"<HeldRecord {self.file} size={self.size} writable={self.writable}>"
