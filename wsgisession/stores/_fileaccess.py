"""The file store's access to its files: locked, checked, failures named.

:class:`FileAccess` is what :class:`~wsgisession.stores.file.FileStore`
builds its store protocol on: reading a record (once more under its
shard's lock when the read overlapped a rewrite), holding a record's file
to rewrite it, replacing or removing one, taking a shard's lock, and
checking that the directory is still this process's alone. Every failure
of the file system comes out as
:class:`~wsgisession.errors.StoreUnavailable`; a missing file, or a
symlink in its place (logged), is an absent record.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator

from ..errors import ConfigError, StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._fileformat import encode
from ._filerecord import HeldRecord, PrivateDirectory, RecordFiles
from ._flock import ShardLocks
from .base import now

__all__ = ["FileAccess"]

# The store's warnings keep the logger name they have always had.
logger = logging.getLogger("wsgisession.stores.file")


class FileAccess:
    """The record files under ``path``, behind their shard locks.

    A base of :class:`~wsgisession.stores.file.FileStore`, which sets
    ``lock_timeout``.
    """

    lock_timeout: float

    def __init__(self, path: str, locks: str) -> None:
        self.path = path
        with self._translate("create the directory"):
            self._directory = PrivateDirectory(path)
        self._shard_locks = ShardLocks(locks)
        self._records = RecordFiles(path)
        self._warn_damaged = ThrottledWarning(logger)  # a client resends its cookie

    def _read_live(self, name: str) -> tuple[bytes, float] | None:
        """The record's payload and expiry if it is live; None otherwise.

        A file that does not read whole may have been read in the middle of
        a rewrite: its writer holds the shard's lock, so it is read once more
        when the lock is free.
        """
        path = self._records.path(name)
        try:
            payload, expires_at = self._records.read(path)
            if payload is None:
                with self._locked(name[:2]):
                    payload, expires_at = self._records.read(path)
        except OSError as exc:
            self._check_missing(name, exc)
            return None
        return self._live(None if payload is None else (payload, expires_at), name)

    def _hold(self, name: str) -> HeldRecord | None:
        """The record's file, open to be read and rewritten; None if there is none."""
        try:
            return self._records.hold(self._records.path(name))
        except OSError as exc:
            self._check_missing(name, exc)
            return None

    def _check_missing(self, name: str, exc: OSError) -> None:
        """Pass over a missing file, or a symlink in its place (logged): the
        record is absent. Any other failure to open or read it is
        StoreUnavailable."""
        if isinstance(exc, FileNotFoundError):
            return
        if exc.errno != errno.ELOOP:
            raise self._unavailable("read", exc) from exc
        self._warn_damaged(
            "%r: ignoring a symlink at session file %s", self, self._records.path(name)
        )

    def _live(
        self, record: tuple[bytes, float] | None, name: str
    ) -> tuple[bytes, float] | None:
        """``record`` if it is live; None if it expired or was unreadable (logged)."""
        if record is None:
            self._warn_damaged(
                "%r: ignoring unreadable session file %s",
                self,
                self._records.path(name),
            )
            return None
        return record if record[1] > now() else None

    def _write(
        self,
        name: str,
        payload: bytes,
        expires_at: float,
        held: HeldRecord | None = None,
    ) -> None:
        """Rewrite the held record in place, or replace it atomically (a
        temporary file renamed over it)."""
        data = encode(payload, expires_at)
        try:  # not self._translate(): this runs for every save
            if held is not None:
                rewritten = held.rewrite(data)
                held.close()  # before a rename too: Windows refuses an open file
                if rewritten:
                    return
            self._records.replace(name, data)
        except OSError as exc:
            raise self._unavailable("write", exc) from exc

    def _release(self, held: HeldRecord | None) -> None:
        """Close a held record file. Closing is where a network file system
        may report a failed write: StoreUnavailable."""
        if held is not None:
            try:
                held.close()
            except OSError as exc:
                raise self._unavailable("write", exc) from exc

    def _unlink(self, name: str) -> bool:
        with self._translate("delete"):
            return self._records.unlink(name)

    def _expiry(self, name: str) -> float | None:
        """The header's ``expires_at``; None if gone, -inf if unreadable, inf if
        unreadable but changed within the last minute (see
        :meth:`._filerecord.RecordFiles.examine`)."""
        found = self._examine(name)
        return None if found is None else found[1]

    def _examine(self, name: str) -> tuple[bytes | None, float] | None:
        """:meth:`._filerecord.RecordFiles.examine`, failures as StoreUnavailable."""
        try:
            return self._records.examine(name)
        except OSError as exc:
            raise self._unavailable("read", exc) from exc

    def _examine_settled(self, name: str) -> tuple[bytes | None, float] | None:
        """:meth:`_examine`; a record found expired is examined again under its
        shard's lock, for a user index to drop it: a save holding that lock
        may have found it live just before it expired and be renewing it."""
        found = self._examine(name)
        if found is not None and found[1] <= now():
            with self._locked(name[:2]):
                found = self._examine(name)
        return found

    # -- locks and errors -----------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, shard: str) -> Iterator[None]:
        """Hold a shard's lock for one operation; failing to get it is StoreUnavailable."""
        try:
            held = self._shard_locks.held(shard, self.lock_timeout)
            held.__enter__()
        except OSError as exc:  # filelock.Timeout is a TimeoutError
            raise self._unavailable("lock", exc) from exc
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    def _check_directory(self) -> None:
        """StoreUnavailable unless the directory is still this process's alone
        (see :class:`._filerecord.PrivateDirectory`)."""
        try:
            self._directory.check()
        except ConfigError as exc:
            raise StoreUnavailable(
                f"FileStore refuses {self.path!r}: it is not the directory it "
                "checked any more (made again or replaced by someone else while "
                f"the app ran? look before you trust it): {exc}",
                store=repr(self),
            ) from exc
        except OSError as exc:
            raise self._unavailable("check the directory", exc) from exc

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
