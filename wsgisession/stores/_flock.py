"""An exclusive ``flock`` held by a process on a descriptor it keeps open."""

from __future__ import annotations

import os
import time

import filelock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the file store uses filelock
    fcntl = None  # type: ignore[assignment]

#: Whether this system has ``flock``; without it the file store uses filelock.
flock_available = fcntl is not None


class FlockLock:
    """An exclusive ``flock`` on one lock file, held by this process.

    The descriptor stays open between uses: taking the lock is one system
    call. Threads of the process queue on a ``threading.Lock`` in front of
    it, so one descriptor per process is enough; a child process drops the
    inherited one (see :meth:`forget`) and opens its own.
    """

    def __init__(self, path: str) -> None:
        self.lock_file = path
        self._fd: int | None = None

    def acquire(self, timeout: float, poll_interval: float) -> None:
        """Lock within ``timeout`` seconds, else raise ``filelock.Timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if self._fd is None:
                self._fd = self._open()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise filelock.Timeout(self.lock_file) from None
                time.sleep(poll_interval)
                continue
            if self._still_linked():
                return
            self.release()  # the file was replaced: lock the one at the path
            self.forget()

    def _open(self) -> int:
        """Open the lock file, creating it and, if it was removed, its directory."""
        try:
            return os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.lock_file), mode=0o700, exist_ok=True)
            return os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)

    def _still_linked(self) -> bool:
        """Whether the locked descriptor is still the file at the path.

        Someone may have removed or replaced the lock file; a lock on the old
        one would exclude nobody who opens the path now.
        """
        assert self._fd is not None
        try:
            return os.path.samestat(os.fstat(self._fd), os.stat(self.lock_file))
        except FileNotFoundError:
            return False
        except OSError:
            self.release()
            raise

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def forget(self) -> None:
        """Close the descriptor, as after ``fork()`` or a replaced lock file.

        After a fork the parent's lock lives on in the parent's descriptor;
        the inherited one must not be used, as its lock would be the parent's.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
