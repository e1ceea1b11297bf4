"""FileStore: one file per session in a directory, for single-host deployments.

Each record is a file named by :func:`storage_key` (hex SHA-256 of the id)
inside a subdirectory named by its first two hex digits. The file holds a
one-line ASCII header (a format tag, ``expires_at`` and the payload length)
followed by the payload bytes. Readers take no lock: writers replace files
atomically. Writers serialise on a fixed pool of at most 256 lock files,
one per subdirectory; the opt-in request lock (``lock = true``) uses a
second pool of at most 4096. The number of lock files never grows with
the number of sessions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import filelock

from .. import _coerce as c
from ..errors import ConfigError, LockTimeout, StoreUnavailable
from ._flock import FlockLock, flock_available
from .base import IniOption, Merge, Progress, Record, Store, now, storage_key

if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]
    _ProcessLock: TypeAlias = "FlockLock | filelock.BaseFileLock"
    _ShardLock = tuple[threading.Lock, _ProcessLock]

__all__ = ["FileStore", "default_path", "ensure_private_directory"]

logger = logging.getLogger(__name__)

_MAGIC = b"wss1"
_HEADER_MAX = 64  # bytes; the longest header is about 45
_READ_SIZE = 65536  # bytes per read: a typical record in one call
_TEMP_PREFIX = ".tmp-"
_TEMP_MAX_AGE = 60.0  # seconds before clear_expired() treats a temp file as orphaned
_LOCK_DIR = ".locks"
_REQUEST_LOCK_PREFIX = "request-"  # + 3 hex digits: at most 4096 request lock files
_HEX = frozenset("0123456789abcdef")
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_WRITE_TEMP = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY
_POLL_INTERVAL = 0.005  # seconds between tries for a lock held by another process


def default_path() -> str:
    """The directory a ``FileStore()`` without a path uses."""
    return os.path.join(tempfile.gettempdir(), "wsgisession")


def ensure_private_directory(path: str) -> None:
    """Create ``path`` (mode 0700) and refuse it if another user could plant files.

    Used for default paths under the shared temporary directory: anyone
    could have created the directory first and filled it with records of
    their choosing.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.stat(path)
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    if not owner_ok or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"session directory {path!r} is writable by other users or not "
            "owned by this one; pass an explicit path"
        )


def _encode(payload: bytes, expires_at: float) -> bytes:
    header = b"%s %s %d\n" % (_MAGIC, repr(expires_at).encode("ascii"), len(payload))
    return header + payload


def _parse_header(data: bytes) -> tuple[float, int, int] | None:
    """``(expires_at, payload_length, payload_offset)`` or None if malformed."""
    end = data.find(b"\n", 0, _HEADER_MAX)
    parts = data[:end].split(b" ") if end > 0 else []
    if len(parts) != 3 or parts[0] != _MAGIC:
        return None
    try:
        expires_at, length = float(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not math.isfinite(expires_at) or length < 0:
        return None
    return expires_at, length, end + 1


def _read_record(fd: int) -> tuple[bytes, float] | None:
    """``(payload, expires_at)`` of an open record file, or None if malformed.

    A record shorter than one read takes one ``os.read``: the header says
    how long the file must be.
    """
    data = os.read(fd, _READ_SIZE)
    header = _parse_header(data)
    if header is None:
        return None
    expires_at, length, offset = header
    if len(data) < offset + length or len(data) == _READ_SIZE:  # maybe more
        chunks = [data]
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) != offset + length:
        return None
    return data[offset:], expires_at


def _write_whole(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _is_shard_name(name: str) -> bool:
    return len(name) == 2 and _HEX.issuperset(name)


def _is_record_name(name: str, shard: str) -> bool:
    return len(name) == 64 and name.startswith(shard) and _HEX.issuperset(name)


class FileStore(Store):
    """Sessions as files under ``path`` (default: ``<tempdir>/wsgisession``).

    The directory is created with mode 0700 and every file with mode 0600.
    Writes go to a temporary file that is then renamed over the record, so a
    crashed process never leaves a half-written record; there is no fsync,
    so a power loss may still lose or truncate recent writes (a truncated
    record then loads as absent). Several processes may share a directory.
    """

    ini_name = "file"
    ini_options = (
        IniOption(
            "file_path", "path or none", None,
            "Directory of the file store; none for a private directory under "
            "the system's temporary directory.",
            c.path, c.parse_optional_text, argument="path",
        ),
    )  # fmt: skip

    #: Seconds to wait for a shard's lock before giving up with StoreUnavailable.
    lock_timeout: float = 30.0

    def __init__(self, path: StrPath | None = None) -> None:
        self.path = os.path.abspath(
            os.fspath(path if path is not None else default_path())
        )
        self._locks: dict[str, _ShardLock] = {}
        self._locks_guard = threading.Lock()
        self._pid = os.getpid()
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConfigError(
                f"FileStore path {self.path!r} exists and is not a directory"
            )
        with self._translate("create the directory"):
            if path is None:
                ensure_private_directory(self.path)
            else:
                os.makedirs(self.path, mode=0o700, exist_ok=True)

    # -- the store protocol -------------------------------------------------

    def load(self, session_key: str) -> Record | None:
        record = self._read_live(storage_key(session_key))
        return None if record is None else Record(record[0], record[1])

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = storage_key(session_key)
        with self._locked(name[:2]):
            # A fresh key's file does not exist: ask without raising first.
            if os.access(self._file(name), os.F_OK) and self._read_live(name):
                return None
            self._write(name, payload, expires_at)
        return session_key

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Read, merge and write under the shard's lock; ``loaded`` is unused."""
        name = storage_key(session_key)
        with self._locked(name[:2]):
            current = self._read_live(name)
            payload, expires_at = merge(None if current is None else current[0])
            if expires_at <= now():
                self._unlink(name)
            else:
                self._write(name, payload, expires_at)
        return session_key

    def delete(self, session_key: str) -> None:
        name = storage_key(session_key)
        with self._locked(name[:2]):
            self._unlink(name)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Remove expired records and orphaned temporary files.

        Records whose header cannot be read count as expired: they can never
        load. Temporary files left by a crashed writer go after 60 seconds.
        """
        try:
            with os.scandir(self.path) as entries:
                shards = [e.name for e in entries if _is_shard_name(e.name)]
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._unavailable("list", exc) from exc
        removed = 0
        for done, shard in enumerate(sorted(shards), 1):
            removed += self._clear_shard(shard)
            if progress is not None:
                progress(done, len(shards))
        return removed

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"

    # -- files ----------------------------------------------------------------

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name[:2], name)

    def _read_live(self, name: str) -> tuple[bytes, float] | None:
        """The record's payload and expiry if it is live; None otherwise."""
        path = self._file(name)
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unavailable("read", exc) from exc
        try:
            record = _read_record(fd)
        except OSError as exc:
            raise self._unavailable("read", exc) from exc
        finally:
            os.close(fd)
        if record is None:
            logger.warning("%r: ignoring unreadable session file %s", self, path)
            return None
        return record if record[1] > now() else None

    def _write(self, name: str, payload: bytes, expires_at: float) -> None:
        """Replace the record atomically: write a temporary file, then rename it.

        Writers of one record hold its shard's lock, so the temporary file
        can have a fixed name; a crash leaves it for ``clear_expired()``.
        """
        directory = os.path.join(self.path, name[:2])
        temp = os.path.join(directory, _TEMP_PREFIX + name)
        with self._translate("write"):
            try:
                fd = os.open(temp, _O_WRITE_TEMP, 0o600)
            except FileNotFoundError:  # the first record of this shard
                self._make_dirs(directory)
                fd = os.open(temp, _O_WRITE_TEMP, 0o600)
            try:
                try:
                    _write_whole(fd, _encode(payload, expires_at))
                finally:
                    os.close(fd)
                os.replace(temp, self._file(name))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise

    def _make_dirs(self, directory: str) -> None:
        """Create a subdirectory, and the root if it was removed, both mode 0700."""
        for path in (self.path, directory):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)

    def _unlink(self, name: str) -> bool:
        with self._translate("delete"):
            try:
                os.unlink(self._file(name))
            except FileNotFoundError:
                return False
        return True

    def _expiry(self, path: str) -> float | None:
        """The header's ``expires_at``; -inf if unreadable, None if gone."""
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
            try:
                header = _parse_header(os.read(fd, _HEADER_MAX))
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unavailable("read", exc) from exc
        return -math.inf if header is None else header[0]

    def _clear_shard(self, shard: str) -> int:
        directory = os.path.join(self.path, shard)
        moment = now()
        candidates, orphans = [], []
        with self._translate("list"), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX):
                    orphans.append(entry.path)
                elif _is_record_name(entry.name, shard):
                    expires_at = self._expiry(entry.path)
                    if expires_at is not None and expires_at <= moment:
                        candidates.append(entry.name)
        if not candidates and not orphans:
            return 0
        removed = 0
        with self._locked(shard):  # no writer of this shard runs meanwhile
            for path in orphans:
                self._remove_orphan(path, moment)
            for name in candidates:  # re-check: a writer may have renewed it
                expires_at = self._expiry(self._file(name))
                if expires_at is not None and expires_at <= now():
                    removed += self._unlink(name)
        return removed

    def _remove_orphan(self, path: str, moment: float) -> None:
        """Remove a temporary file a crashed writer left, once it is old enough."""
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mtime < moment - _TEMP_MAX_AGE:
                os.unlink(path)

    # -- locks and errors -----------------------------------------------------

    def _lock_for(self, shard: str) -> _ShardLock:
        """The cached lock pair named ``shard``, made on first use."""
        with self._locks_guard:
            if self._pid != os.getpid():  # forked: drop the parent's lock objects
                for _, inherited in self._locks.values():
                    if isinstance(inherited, FlockLock):
                        inherited.forget()
                self._locks.clear()
                self._pid = os.getpid()
            pair = self._locks.get(shard)
            if pair is None:
                directory = os.path.join(self.path, _LOCK_DIR)
                self._make_dirs(directory)
                path = os.path.join(directory, shard + ".lock")
                shared: _ProcessLock
                if flock_available:
                    shared = FlockLock(path)
                else:  # pragma: no cover - systems without fcntl (Windows)
                    shared = filelock.FileLock(path, mode=0o600, thread_local=True)
                pair = threading.Lock(), shared
                self._locks[shard] = pair
            return pair

    @contextlib.contextmanager
    def _locked(self, shard: str) -> Iterator[None]:
        """Hold a shard's lock for one operation; failing to get it is StoreUnavailable."""
        try:
            release = self._acquire(shard, self.lock_timeout)
        except OSError as exc:  # filelock.Timeout is a TimeoutError
            raise self._unavailable("lock", exc) from exc
        try:
            yield
        finally:
            release()

    def _acquire(self, name: str, timeout: float) -> Callable[[], None]:
        """Take the lock pair ``name`` within ``timeout``; return its release.

        Threads of this process queue on a ``threading.Lock`` (no polling);
        the file lock behind it excludes other processes, and the system
        drops it when a holder dies.
        """
        deadline = time.monotonic() + timeout
        local, shared = self._lock_for(name)
        if not local.acquire(timeout=timeout):
            raise filelock.Timeout(shared.lock_file)
        try:
            remaining = max(deadline - time.monotonic(), 0.0)
            shared.acquire(timeout=remaining, poll_interval=_POLL_INTERVAL)
        except BaseException:
            local.release()
            raise

        def release() -> None:
            shared.release()
            local.release()

        return release

    @contextlib.contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold one of at most 4096 request lock files (the system frees a dead holder's)."""
        name = _REQUEST_LOCK_PREFIX + storage_key(session_key)[:3]
        try:
            release = self._acquire(name, timeout)
        except filelock.Timeout as exc:
            raise LockTimeout(f"session lock not obtained within {timeout} s") from exc
        except OSError as exc:
            raise self._unavailable("lock", exc) from exc
        try:
            yield
        finally:
            release()

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(
            f"FileStore cannot {action} in {self.path!r}: {exc}", store=repr(self)
        )
