"""Request locks as files that carry their own expiry, one per session key.

A ``flock`` is freed by the system when its holder dies, but it has no
TTL: a live holder stuck in a slow request would keep it forever. So a
request lock of the file store is a file ``<directory>/<storage key>``
holding ``<token> <expires_at>``:

- **take**: write the content to a temporary file of a unique name, then
  ``os.link`` it to the lock's name. ``link`` fails when the name exists,
  so a lock file appears whole or not at all, atomically, across processes.
- **wait**: poll. A waiter that reads an ``expires_at`` in the past breaks
  the lock (removes the file), then tries to take it.
- **release**: remove the file if it still holds the holder's token (a
  holder past its ttl may find its lock broken and taken by another).

Breaking and releasing both read the file and then unlink it. They run
under the shard lock the store's writers use (an flock held for one short
operation), so nobody can remove or replace the file between the read and
the unlink; taking needs no such lock, as it cannot succeed while the file
exists. A holder that dies leaves its file behind; the next waiter breaks
it once past ``ttl``, and :meth:`RequestLocks.remove_stale` (called by the
store's sweeps) removes stale files nobody waits for. Lock files are
therefore as many as the locks held, plus the stale ones until a sweep.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager

from ._descriptor import Descriptor
from ._flock import make_private_dirs
from ._lockwaits import wait_for_lock
from .base import now

__all__ = ["RequestLocks", "open_new_file"]

_TEMP_PREFIX = ".tmp-"
_TEMP_MAX_AGE = 60.0  # seconds before a sweep treats a temporary file as orphaned
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
# Non-blocking: a FIFO at a lock's name reads as a damaged lock, not a hang.
_O_READ = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY | getattr(os, "O_NONBLOCK", 0)
_O_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
_READ_MAX = 128  # bytes: a token, a float and a space
_NAME_LENGTH = 64  # a lock file is named by the session's storage key
_HEX = frozenset("0123456789abcdef")

#: ``guard(shard)``: the store's short lock of one shard (two hex digits).
Guard = Callable[[str], AbstractContextManager[None]]


def open_new_file(path: str) -> Descriptor:
    """Create ``path`` (mode 0600) for writing; never reuse or follow what is there."""
    return Descriptor(path, _O_CREATE_NEW, 0o600)


def _read_lock(path: str) -> tuple[str, float] | None:
    """``(token, expires_at)`` of a lock file; None if absent, -inf if damaged."""
    try:
        opened = Descriptor(path, _O_READ)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        return "", -math.inf  # a symlink planted at the name: stale at once
    try:
        parts = os.read(opened.fd, _READ_MAX).split(b" ")
    finally:
        opened.close()
    try:
        token, expires_at = parts[0].decode("ascii"), float(parts[1])
    except (IndexError, ValueError):
        return "", -math.inf
    return token, expires_at


class RequestLocks:
    """The request locks of one file store, as expiring files in ``directory``."""

    def __init__(self, directory: str, guard: Guard) -> None:
        self.directory = directory
        self._guard = guard

    def acquire(
        self, name: str, timeout: float, ttl: float, token: str | None = None
    ) -> str:
        """Take the lock ``name`` (a storage key) within ``timeout``; return its
        token (``token`` if given: the caller can release it if cut short).

        Raises :class:`~wsgisession.errors.LockTimeout` when the lock stays
        held, by a holder whose ttl has not run out, for ``timeout`` seconds.
        """
        token = token or secrets.token_hex(16)
        path = os.path.join(self.directory, name)

        def take() -> bool:
            held = _read_lock(path)
            if held is not None:
                if held[1] > now():
                    return False
                self._break(name, path)
            return self._create(path, token, now() + ttl)

        wait_for_lock(take, timeout, path)
        return token

    def release(self, name: str, token: str) -> None:
        """Drop the lock ``name`` if ``token`` still holds it."""
        path = os.path.join(self.directory, name)
        with self._guard(name[:2]):
            held = _read_lock(path)
            if held is not None and held[0] == token:
                os.unlink(path)

    def remove_stale(self, limit: int) -> int:
        """Remove up to ``limit`` expired lock files and orphaned temporary files."""
        removed, moment = 0, now()
        try:
            with os.scandir(self.directory) as entries:
                names = [entry.name for _, entry in zip(range(limit), entries)]
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(self.directory, name)
            if name.startswith(_TEMP_PREFIX):
                removed += _remove_if_older(path, moment - _TEMP_MAX_AGE)
                continue
            if len(name) != _NAME_LENGTH or not _HEX.issuperset(name):
                continue  # not a lock file of ours
            held = _read_lock(path)
            if held is not None and held[1] <= moment:
                removed += self._break(name, path)
        return removed

    def _break(self, name: str, path: str) -> bool:
        """Remove the lock file if it is still expired (re-read under the guard)."""
        with self._guard(name[:2]):
            held = _read_lock(path)
            if held is None or held[1] > now():
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return True

    def _create(self, path: str, token: str, expires_at: float) -> bool:
        """Publish a complete lock file at ``path``; False if one is there."""
        temp = os.path.join(self.directory, _TEMP_PREFIX + token)
        try:
            made = open_new_file(temp)
        except FileNotFoundError:  # the first lock, or the directory was removed
            make_private_dirs(os.path.dirname(self.directory), self.directory)
            made = open_new_file(temp)
        try:
            try:
                content = b"%s %s" % (token.encode(), repr(expires_at).encode())
                os.write(made.fd, content)
            finally:
                made.close()
            os.link(temp, path, follow_symlinks=False)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return True


def _remove_if_older(path: str, cutoff: float) -> bool:
    with contextlib.suppress(FileNotFoundError):
        if os.lstat(path).st_mtime < cutoff:
            os.unlink(path)
            return True
    return False
