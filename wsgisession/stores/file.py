"""FileStore: one file per session in a directory, for single-host deployments.

Each record is a file named by :func:`storage_key` (hex SHA-256 of the id)
inside a subdirectory (a shard) named by its first two hex digits, read
and written by :mod:`._filerecord` in the format of :mod:`._fileformat`,
under the locks and checks of :mod:`._fileaccess`.
Readers take no lock: a writer rewrites a small record in one write, and
its checksum tells a reader that overlapped it to read again; a larger
record is replaced atomically. Writers serialise
on a fixed pool of at most 256 lock files, one per shard, each held for
one short operation. A new record needs no lock: its file is made with
``O_EXCL`` (never over another) and written at once; only if the name is
taken is an expired record there replaced under the lock.

The opt-in request lock (``lock = true``) is a lock file per session key
that carries its own expiry (:mod:`._lockfile`): no two sessions share a
lock, a holder loses it after ``ttl``, and lock files exist only while
held (stale ones are removed by the next waiter or sweep).

Each user's index of sessions (``bind_user``) is a small file of record
names under ``users/`` (:mod:`._fileusers`).

The directory is trusted only if this process's user owns it and neither
group nor others can write to it; files inside are opened without
following symlinks (``O_NOFOLLOW``), new ones with ``O_EXCL``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import _coerce as c
from ..errors import ConfigError, StoreUnavailable
from ._fileaccess import FileAccess
from ._fileformat import encode
from ._filerecord import default_path, ensure_private_directory, is_temp_name
from ._filesweep import ShardWalk, is_record_name
from ._fileusers import UserIndex, UserIndexes
from ._lockfile import RequestLocks
from ._shared import undo_if_cut_short, undone_if_cut_short
from .base import IniOption, Merge, Progress, Record, Store, now, storage_key

if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["FileStore", "default_path", "ensure_private_directory"]

logger = logging.getLogger(__name__)

_LOCK_DIR = ".locks"
_REQUEST_LOCK_DIR = "requests"  # under _LOCK_DIR: one file per held request lock


class FileStore(FileAccess, Store):
    """Sessions as files under ``path`` (default: :func:`default_path`).

    The directory is created with mode 0700 and every file with mode 0600.
    A record of at most one page is rewritten in place with one write;
    larger ones go to a temporary file that is then renamed over the record,
    so a crashed process never leaves a half-written record (only, for a
    new session whose id it never gave out, a file that sweeps remove a
    minute later). There is no fsync, so a
    power loss may still lose or damage recent writes (a damaged record
    fails its checksum and loads as absent). Several processes may share a
    directory.
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

    supports_user_sessions = True

    #: Seconds to wait for a shard's lock before giving up with StoreUnavailable.
    lock_timeout: float = 30.0

    def __init__(self, path: StrPath | None = None) -> None:
        absolute = os.path.abspath(
            os.fspath(path if path is not None else default_path())
        )
        if os.path.exists(absolute) and not os.path.isdir(absolute):
            raise ConfigError(
                f"FileStore path {absolute!r} exists and is not a directory"
            )
        locks = os.path.join(absolute, _LOCK_DIR)
        super().__init__(absolute, locks)
        self._request_locks = RequestLocks(
            os.path.join(locks, _REQUEST_LOCK_DIR), self._locked
        )
        self._walk = ShardWalk(absolute)
        self._users = UserIndexes(absolute, locks)

    # -- the store protocol -------------------------------------------------

    def load(self, session_key: str) -> Record | None:
        self._check_directory()
        record = self._read_live(storage_key(session_key))
        return None if record is None else Record(record[0], record[1])

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        """Make the record's file, which must not exist, with no lock (see
        :meth:`._filerecord.RecordFiles.create`); if the name is taken, check
        and replace an expired record under the lock."""
        name = storage_key(session_key)
        self._check_directory()
        try:
            if self._records.create(name, encode(payload, expires_at)):
                return session_key
        except OSError as exc:
            raise self._unavailable("create a session", exc) from exc
        with self._locked(name[:2]):
            held = self._hold(name)
            try:
                if held is not None and self._live(held.record, name):
                    return None
                self._write(name, payload, expires_at, held)
            finally:
                self._release(held)
        return session_key

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Read, merge and write under the shard's lock; ``loaded`` is unused.

        The file is read and written through one descriptor: a small record
        is rewritten in place (see :class:`._filerecord.HeldRecord`).
        """
        name = storage_key(session_key)
        self._check_directory()
        with self._locked(name[:2]):
            held = self._hold(name)
            try:
                current = None if held is None else self._live(held.record, name)
                payload, expires_at = merge(None if current is None else current[0])
                if expires_at <= now():
                    self._release(held)  # Windows removes no file held open
                    self._unlink(name)
                else:
                    self._write(name, payload, expires_at, held)
            finally:
                self._release(held)
        return session_key

    def delete(self, session_key: str) -> None:
        name = storage_key(session_key)
        self._check_directory()
        with self._locked(name[:2]):
            self._unlink(name)

    # -- a user's sessions ----------------------------------------------------

    def create_user_session(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """Index, then create, both under the user's index lock."""
        name = storage_key(session_key)
        self._check_directory()
        with (
            self._translate("index a session"),
            self._users.holding(user_id, self.lock_timeout) as index,
        ):
            self._prune(index.names)
            index.names.add(name)
            index.write()
            created = self.create(session_key, payload, expires_at)
            if created is None:
                index.names.discard(name)
                index.write()
        return created

    def user_session_records(self, user_id: str) -> dict[str, Record]:
        records = {}
        self._check_directory()
        with (
            self._translate("list a user's sessions"),
            self._users.holding(user_id, self.lock_timeout) as index,
        ):
            for name in sorted(index.names):
                record = self._read_live(name)  # a rewrite in progress waits
                if record is None:  # expired, maybe renewed by a save meanwhile
                    payload, expires_at = self._examine_settled(name) or (None, 0.0)
                    if payload is not None and expires_at > now():
                        record = payload, expires_at
                if record is None:
                    index.names.discard(name)
                else:
                    records[name] = Record(*record)
            self._write_pruned(index)
        return records

    def _write_pruned(self, index: UserIndex) -> None:
        """Store an index a listing pruned. Failing to (a full disk) is
        logged, not raised: the listing stands, and revoking a user's
        sessions, which only reads and removes files, must not fail then;
        the next listing or sweep prunes it again."""
        try:
            index.write()
        except OSError as exc:
            logger.warning("%r: could not prune a user index: %s", self, exc)

    def delete_record(self, record_name: str) -> bool:
        if not is_record_name(record_name, record_name[:2]):
            return False
        self._check_directory()
        with self._locked(record_name[:2]):
            expires_at = self._expiry(record_name)
            removed = self._unlink(record_name)
        return removed and expires_at is not None and expires_at > now()

    def _prune(self, names: set[str], limit: int | None = None) -> int:
        """Drop the record names whose record is gone, expired or damaged for
        a minute (a file that does not read whole just now may be being
        rewritten: see :meth:`._filerecord.RecordFiles.examine`).

        At most ``limit`` records are read (None: every one), picked at
        random, so that successive sweeps reach them all. How many were read.
        """
        listed = list(names)
        if limit is not None and len(listed) > limit:
            listed = random.sample(listed, limit)
        for name in listed:
            found = self._examine_settled(name)
            if found is None or found[1] <= now():
                names.discard(name)
        return len(listed)

    def _prune_user_index(self, file_name: str, limit: int | None = None) -> int:
        """Prune one user's index (stored as ``file_name``), reading at most
        ``limit`` of its records (None: all); an index left empty goes. How
        many records it read."""
        with self._users.holding_file(file_name, self.lock_timeout) as index:
            read = self._prune(index.names, limit)
            index.write()
        return read

    def _prune_user_indexes(self) -> None:
        """Prune every user index and remove orphaned temporary files (a full sweep)."""
        self._users.remove_orphans(now() - 60.0, self.lock_timeout)
        for file_name in self._users.file_names():
            self._prune_user_index(file_name)

    def _sweep_user_indexes(self, limit: int) -> None:
        """Prune the next user indexes, going on where the previous sweep
        stopped, until ``limit`` files and listed records are read (or the
        directory's end); orphaned temporary files among them go too. Each
        sweep reads a bounded part of ``users/`` (of one large index, a
        random part), and successive sweeps cover it, so that users who
        never come back leave nothing behind."""
        budget, cutoff = limit, now() - 60.0
        while budget > 0 and (names := self._users.next_names(1)):
            budget -= 1
            if is_record_name(names[0], names[0][:2]):
                budget -= self._prune_user_index(names[0], max(budget, 1))
            else:
                self._users.remove_orphans(cutoff, self.lock_timeout, names)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Remove expired records, orphaned temporary files and stale lock files.

        Files that hold no record count as expired (they can never load)
        once a minute old: a younger one may be a new record still being
        written. Temporary files left by a crashed writer go after a minute too.
        """
        self._check_directory()
        with self._translate("list"):
            shards = self._records.shards()
        if shards is None:  # the directory is gone
            return 0
        removed = 0
        for done, shard in enumerate(shards, 1):
            with self._translate("remove expired sessions"):
                removed += self._remove_expired(shard, self._records.names(shard))
            if progress is not None:
                progress(done, len(shards))
        with self._translate("remove stale locks"):
            self._request_locks.remove_stale(limit=2**62)
            self._prune_user_indexes()
        return removed

    def sweep_expired(self, limit: int) -> int:
        """Remove at most ``limit`` expired records, looking at ``limit`` files at most.

        Each sweep goes on where this process's previous one stopped (an
        open directory iterator over one shard, then the next shard), so
        successive sweeps cover the whole store while each reads at most
        ``limit`` files. Each also prunes the next ``limit`` user indexes
        at most; after a round of all shards, stale request lock files go
        too (at most ``limit``). A sweep already running in another thread
        makes this one return 0 at once.
        """
        if limit <= 0:
            return 0
        self._check_directory()
        guard = self._walk.guard
        taken: list[bool] = []
        try:
            # Taken by C code that stores the outcome before Python looks for
            # an interrupt: one arriving as it returns is inside the ``try``
            # (else the guard stayed taken: no sweep ran again, and close()
            # waited for it forever).
            taken.extend(map(guard.acquire, (False,)))
            if not taken[0]:
                return 0
            removed = 0
            with self._translate("sweep"):
                for shard, names, round_done in self._walk.batches(limit):
                    removed += self._remove_expired(shard, names)
                    if round_done:
                        self._request_locks.remove_stale(limit)
                self._sweep_user_indexes(limit)
            return removed
        finally:
            if taken == [True]:
                guard.release()

    def _expired(self, name: str, moment: float) -> bool:
        expires_at = self._expiry(name)
        return expires_at is not None and expires_at <= moment

    def _remove_expired(self, shard: str, names: list[str]) -> int:
        """Remove the expired records and orphaned temp files among ``names``."""
        moment = now()
        temp_names = [name for name in names if is_temp_name(name)]
        records = [name for name in names if is_record_name(name, shard)]
        candidates = [name for name in records if self._expired(name, moment)]
        if not candidates and not temp_names:
            return 0
        removed = 0
        with self._locked(shard):  # no writer of this shard runs meanwhile
            self._records.remove_orphans(shard, temp_names, moment)
            for name in candidates:  # re-check: a writer may have renewed it
                if self._expired(name, now()):
                    removed += self._unlink(name)
        return removed

    @contextlib.contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold the request lock file of this session key (see :mod:`._lockfile`)."""
        name, token = storage_key(session_key), secrets.token_hex(16)
        self._check_directory()
        locks = self._request_locks

        def take() -> None:
            with self._translate("lock"):
                locks.acquire(name, timeout, ttl, token)

        def release() -> None:
            try:
                with self._translate("unlock"):
                    locks.release(name, token)
            except StoreUnavailable:  # the file expires anyway; keep the real error
                logger.warning("%r: could not release a session lock", self)

        undone_if_cut_short(take, lambda: locks.release(name, token))
        try:
            yield
        finally:
            try:  # here, not in undone_if_cut_short: see undo_if_cut_short
                release()
            except BaseException as exc:
                undo_if_cut_short(exc, lambda: locks.release(name, token))
                raise

    def close(self) -> None:
        """Close the lock files and the sweep's directory iterator.

        The store stays usable: the next operation reopens what it needs. A
        store dropped without it closes its lock files as it is collected.
        """
        self._shard_locks.close()
        self._users.close()
        with self._walk.guard:
            self._walk.close()
            self._users.close_walk()

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"
