"""File locks the file store holds for one short operation: an exclusive
``flock`` on a descriptor kept open, behind a thread lock per name."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import filelock

from ..errors import ConfigError
from ._descriptor import Descriptor

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the file store uses filelock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from typing import TypeAlias

    _ProcessLock: TypeAlias = "FlockLock | filelock.BaseFileLock"
    _LockPair = tuple[threading.RLock, _ProcessLock]

#: Whether this system has ``flock``; without it the file store uses filelock.
flock_available = fcntl is not None

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # never open a planted symlink
_POLL_INTERVAL = 0.005  # seconds between tries for a lock held by another process
_O_OPEN_LOCK = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW


def make_private_dirs(*paths: str) -> None:
    """Create each missing directory of ``paths`` in turn, with mode 0700.

    ``os.makedirs`` would give the parents it creates the default mode.
    """
    for path in paths:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)


def make_missing_directories(path: str) -> None:
    """Create ``path`` and its missing parents, each with mode 0700 whatever
    the umask (``os.makedirs`` gives the parents it creates the default mode,
    which may let others move the directory away)."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    make_private_dirs(*reversed(missing))


def refuse_others_writing(
    path: str, info: os.stat_result, what: str, mode: str, hint: str = ""
) -> None:
    """ConfigError, saying how to fix it, if ``path`` (a ``what`` whose stat is
    ``info``) is another user's or group or others can write to it: whoever
    can write it can plant a session and be logged in as anyone. ``mode`` is
    the one to give it (``700``, ``600``)."""
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise foreign_owner(path, info.st_uid, what, mode, hint)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{what} {path!r} has mode {stat.S_IMODE(info.st_mode):o}: "
            f"group or others can write to it and plant sessions; "
            f"run `chmod {mode} {path}`"
        )


def foreign_owner(
    path: str, owner: int, what: str, mode: str, hint: str = ""
) -> ConfigError:
    """The ConfigError for a ``what`` at ``path`` that uid ``owner`` owns, not
    this process's user. Either may be the app's: a command run as root (or
    as a developer) against the app's store must be run as its owner, not
    take the store from the app with ``chown``."""
    me = os.getuid()
    if owner == 0:  # root: a directory made for the app, or a system one
        return ConfigError(
            f"{what} {path!r} is owned by {_user(owner)}, not by this "
            f"process's user, {_user(me)}, who must own it alone: if it was "
            f"made for the app, run `chown {me} {path}` and `chmod {mode} "
            f"{path}`; if it is a system directory (such as /var/lib), do not: "
            f"give the store a path of its own inside it{hint}"
        )
    return ConfigError(
        f"{what} {path!r} is owned by {_user(owner)}, not by this process's "
        f"user, {_user(me)}, who must own it alone: if its owner is the app's "
        f"user, run this as that user (`sudo -u {_sudo_name(owner)} ...`); if "
        f"this process's user is the app's, run `chown {me} {path}` and "
        f"`chmod {mode} {path}`{hint}"
    )


def _user(uid: int) -> str:
    """``uid 999 (myapp)``, or ``uid 999`` for a uid without a name."""
    name = _user_name(uid)
    return f"uid {uid}" if name is None else f"uid {uid} ({name})"


def _sudo_name(uid: int) -> str:
    """The user as ``sudo -u`` takes it: the name, else ``'#uid'``."""
    return _user_name(uid) or f"'#{uid}'"


def _user_name(uid: int) -> str | None:
    try:
        import pwd
    except ImportError:  # pragma: no cover - Windows has no uids
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


class FlockLock:
    """An exclusive ``flock`` on one lock file, held by this process.

    The descriptor stays open between uses: taking the lock is one system
    call. Threads of the process queue on a ``threading.Lock`` in front of
    it, so one descriptor per process is enough; a child process drops the
    inherited one (see :meth:`forget`) and opens its own. A lock dropped
    without :meth:`forget` (a store dropped unclosed: a reload, a test)
    closes its descriptor as it is collected (:class:`._descriptor.Descriptor`).
    """

    def __init__(self, path: str) -> None:
        self.lock_file = path
        self._fd: Descriptor | None = None
        #: Set by :meth:`ShardLocks.close` while held: closed on release.
        self.closed = False
        self._identity = (0, 0)

    def acquire(self, timeout: float, poll_interval: float) -> None:
        """Lock within ``timeout`` seconds, else raise ``filelock.Timeout``."""
        deadline = None
        while True:
            if self._fd is None:
                self._fd, self._identity = self._open()
            try:
                fcntl.flock(self._fd.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                moment = time.monotonic()
                if deadline is None:  # the clock is read only when held
                    deadline = moment + timeout
                if moment >= deadline:
                    raise filelock.Timeout(self.lock_file) from None
                time.sleep(poll_interval)
                continue
            if self._still_linked():
                return
            self.release()  # the file was replaced: lock the one at the path
            self.forget()

    def _open(self) -> tuple[Descriptor, tuple[int, int]]:
        """Open the lock file, creating it and, if it was removed, its
        directory; the descriptor and the file's identity (device, inode)."""
        try:
            opened = Descriptor(self.lock_file, _O_OPEN_LOCK, 0o600)
        except FileNotFoundError:
            directory = os.path.dirname(self.lock_file)
            make_private_dirs(os.path.dirname(directory), directory)
            opened = Descriptor(self.lock_file, _O_OPEN_LOCK, 0o600)
        info = os.fstat(opened.fd)
        return opened, (info.st_dev, info.st_ino)

    def _still_linked(self) -> bool:
        """Whether the locked descriptor is still the file at the path.

        Someone may have removed or replaced the lock file; a lock on the old
        one would exclude nobody who opens the path now. The open descriptor
        keeps its inode alive, so no new file can have the same identity.
        """
        try:
            info = os.stat(self.lock_file)
        except FileNotFoundError:
            return False
        except OSError:
            self.release()
            raise
        return (info.st_dev, info.st_ino) == self._identity

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd.fd, fcntl.LOCK_UN)

    def forget(self) -> None:
        """Close the descriptor, as after ``fork()`` or a replaced lock file.

        After a fork the parent's lock lives on in the parent's descriptor;
        the inherited one must not be used, as its lock would be the parent's.
        """
        opened, self._fd = self._fd, None
        if opened is not None:
            opened.close()


class ShardLocks:
    """Named process-and-thread locks, one lock file each, under ``directory``.

    Each name gets a ``threading.Lock`` (threads of this process queue on
    it, no polling) in front of a file lock that excludes other processes;
    the system drops a dead holder's file lock. The file store uses one
    name per shard, so there are at most 256 of them.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._locks: dict[str, _LockPair] = {}
        self._guard = threading.Lock()
        self._pid = os.getpid()

    def acquire(self, name: str, timeout: float) -> Callable[[], None]:
        """Take the lock ``name`` within ``timeout``; return its release.

        Raises ``filelock.Timeout`` (a ``TimeoutError``) when it stays held.
        Cut short by an interrupt (a signal handler's ``KeyboardInterrupt``,
        an exception sent to the thread) once the thread lock is taken, it
        lets it go: the thread lock is an ``RLock``, which knows its owner.
        """
        local, shared = self._pair(name)
        try:
            remaining = timeout
            if not local.acquire(blocking=False):  # the clock is read only when held
                start = time.monotonic()
                if not local.acquire(timeout=timeout):
                    raise filelock.Timeout(shared.lock_file)
                remaining = max(timeout - (time.monotonic() - start), 0.0)
            shared.acquire(timeout=remaining, poll_interval=_POLL_INTERVAL)
        except BaseException:
            if local._is_owned():  # type: ignore[attr-defined]
                local.release()
            raise
        return lambda: self._release(local, shared)

    @contextlib.contextmanager
    def held(self, name: str, timeout: float) -> Iterator[None]:
        """Hold the lock ``name`` for a block (see :meth:`acquire`). Released
        however an interrupt cuts the block, or the taking, short: from the
        ``finally`` (the generator's own, if the ``with`` never began), by
        the thread that took it, which owns the thread lock."""
        local, shared = self._pair(name)
        try:
            self.acquire(name, timeout)
            yield
        finally:
            try:
                if local._is_owned():  # type: ignore[attr-defined]
                    self._release(local, shared)
            except BaseException:  # an interrupt as the check returned, or as
                # the release began: once more
                if local._is_owned():  # type: ignore[attr-defined]
                    self._release(local, shared)
                raise

    @staticmethod
    def _release(local: threading.RLock, shared: _ProcessLock) -> None:
        try:
            shared.release()
            if isinstance(shared, FlockLock) and shared.closed:
                shared.forget()  # close() ran meanwhile: its descriptor goes
        finally:
            local.release()

    def close(self) -> None:
        """Close the lock files' descriptors; the next use reopens them.

        A lock another thread holds keeps its descriptor until that thread
        releases it (closing it would drop the flock under its holder); the
        next user of the name opens a descriptor of its own, whose flock
        waits for the holder's.
        """
        with self._guard:
            pairs = list(self._locks.values())
            self._locks.clear()
        for local, shared in pairs:
            if not isinstance(shared, FlockLock):
                continue
            shared.closed = True  # a holder closes it as it releases
            if local.acquire(blocking=False):
                shared.forget()
                local.release()

    def _pair(self, name: str) -> _LockPair:
        """The cached lock pair named ``name``, made on first use."""
        if self._pid == os.getpid():  # the usual case: no guard needed to read
            pair = self._locks.get(name)
            if pair is not None:
                return pair
        with self._guard:
            if self._pid != os.getpid():  # forked: drop the parent's lock objects
                for _, inherited in self._locks.values():
                    if isinstance(inherited, FlockLock):
                        inherited.forget()
                self._locks.clear()
                self._pid = os.getpid()
            pair = self._locks.get(name)
            if pair is None:
                make_private_dirs(os.path.dirname(self.directory), self.directory)
                path = os.path.join(self.directory, name + ".lock")
                shared: _ProcessLock
                if flock_available:
                    shared = FlockLock(path)
                else:  # pragma: no cover - systems without fcntl (Windows)
                    shared = filelock.FileLock(path, mode=0o600, thread_local=True)
                pair = threading.RLock(), shared
                self._locks[name] = pair
            return pair


@contextlib.contextmanager
def directory_locked(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on a directory (a no-op without ``flock``).

    For rare, short steps that processes must not interleave, such as
    recreating a removed database file.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    opened = Descriptor(path, os.O_RDONLY)
    try:
        fcntl.flock(opened.fd, fcntl.LOCK_EX)
        yield
    finally:
        opened.close()  # closing drops the lock
