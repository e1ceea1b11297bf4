"""Pieces the networked stores share: value framing, retry back-off, lock polling."""

from __future__ import annotations

import contextlib
import math
import os
import random
import struct
import time
from collections.abc import Callable
from typing import TypeVar

from .. import _coerce as c
from ..errors import ConfigError, LockTimeout, StoreUnavailable
from ..expiry import MAX_SECONDS
from .base import IniOption

_HEADER = struct.Struct(">Bd")  # format byte, expires_at
_FORMAT = 1
_BACKOFF_BASE = 0.001  # seconds
_BACKOFF_CAP = 0.05  # seconds
_LOCK_POLL = (0.002, 0.02)  # seconds between tries for a held lock

T = TypeVar("T")

#: Request locks live next to their record, under this suffix.
LOCK_SUFFIX = ":lock"


def pack(payload: bytes, expires_at: float) -> bytes:
    """A stored value: a 9-byte header carrying ``expires_at``, then the payload."""
    return _HEADER.pack(_FORMAT, expires_at) + payload


def unpack(value: object) -> tuple[bytes, float] | None:
    """Payload and ``expires_at`` of a stored value, or None if it is not ours."""
    if not isinstance(value, bytes) or len(value) < _HEADER.size:
        return None
    fmt, expires_at = _HEADER.unpack_from(value)
    if fmt != _FORMAT or math.isnan(expires_at):
        return None
    return value[_HEADER.size :], expires_at


#: The longest wait ``sqlite3`` can time: it hands SQLite its ``timeout`` as
#: a C int of milliseconds, and a longer one overflowed into no wait at all
#: (a save meeting another writer failed at once, "database is locked").
MAX_SQLITE_WAIT = float((2**31 - 1) // 1000)


def check_timeout(name: str, value: object) -> float:
    """A store's timeout argument as a float: seconds above 0 and at most
    :data:`MAX_SECONDS`. An infinite or larger one would pass here and make
    the first request fail when a socket is given it (``OverflowError``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= MAX_SECONDS  # also refuses inf and NaN
    ):
        raise ConfigError(
            f"{name} must be a number of seconds > 0 and <= {MAX_SECONDS}: {value!r}"
        )
    return float(value)


def pause(conflicts: int) -> None:
    """Back off, with jitter, after the second conflict in a row, so that
    writers hammering one record take turns instead of starving each other."""
    if conflicts > 1:
        cap = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (conflicts - 2))
        time.sleep(random.uniform(0, cap))


def poll_lock(take: Callable[[], bool], timeout: float) -> None:
    """Call ``take`` until it returns True; LockTimeout after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not take():
        if time.monotonic() >= deadline:
            raise LockTimeout(f"session lock not obtained within {timeout} s")
        time.sleep(random.uniform(*_LOCK_POLL))


def per_process(made: dict[int, T], make: Callable[[], T]) -> T:
    """This process's object in ``made``, made by ``make`` on its first use here.

    For a lock or condition a store would otherwise make as it is built, in
    the process that builds it: under ``gunicorn --preload``, the master,
    before a gevent or eventlet worker forks and monkey-patches. Such an OS
    lock, held by a greenlet whose I/O yields, blocks the next greenlet that
    asks for it, and with it the worker's only thread, for good; eventlet
    refuses an OS condition outright (``RuntimeError: cannot notify on
    un-acquired lock``). Made on first use it is the patched one, and a
    forked child never waits for its parent's (which a thread of the parent
    may have held at the fork).
    """
    pid = os.getpid()
    found = made.get(pid)
    return found if found is not None else made.setdefault(pid, make())


_SQLITE_BUSY = 5  # SQLITE_BUSY, the low byte of its extended codes too


def sqlite_busy(exc: StoreUnavailable) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": other writers held
    the file past the busy timeout (contention, not an outage). The cause
    is sqlite3's error, or SQLAlchemy's wrapping it (``orig``)."""
    cause = exc.__cause__
    code = getattr(getattr(cause, "orig", None) or cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _SQLITE_BUSY


def unless_sqlite_busy(step: Callable[[], object]) -> Callable[[], bool]:
    """``step`` as a :func:`poll_lock` try: False, to try again, while SQLite
    says "database is locked". Many waiters on one file can keep one of them
    past the busy timeout: that is contention, not an outage, and a session
    lock has its own timeout."""

    def attempt() -> bool:
        try:
            return step() is not False
        except StoreUnavailable as exc:
            if sqlite_busy(exc):
                return False
            raise

    return attempt


#: How many busy timeouts a step of ``clear_expired()`` (a cron job, the
#: CLI) waits out other writers of a SQLite file.
CLEANUP_BUSY_ROUNDS = 10
_BUSY_RETRY = 0.05  # seconds between tries


def waiting_out_sqlite_busy(step: Callable[[], T], busy_timeout: float) -> T:
    """``step()``, tried again while SQLite says "database is locked", for up
    to :data:`CLEANUP_BUSY_ROUNDS` times ``busy_timeout`` seconds: a cleanup
    beside busy workers waits its turn rather than failing a cron job."""
    deadline = time.monotonic() + CLEANUP_BUSY_ROUNDS * busy_timeout
    while True:
        try:
            return step()
        except StoreUnavailable as exc:
            if not sqlite_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_BUSY_RETRY)


def release_lock(drop: Callable[[], object], timeout: float) -> bool:
    """Drop a lock row, trying again for up to ``timeout`` while SQLite is
    busy (else the row would stay held for its whole ttl); False if it
    could not be dropped (the row expires anyway)."""
    try:
        poll_lock(unless_sqlite_busy(drop), timeout)
    except (StoreUnavailable, LockTimeout):
        return False
    return True


def undone_if_cut_short(step: Callable[[], object], undo: Callable[[], object]) -> None:
    """``step()``, taking or releasing a request lock. Cut short by anything
    but LockTimeout or StoreUnavailable (an interrupt: a signal handler's
    ``KeyboardInterrupt``, a ``gevent.Timeout``, an exception sent to the
    thread), the lock may be held all the same, and would hold the session
    for its ttl: ``undo()`` (release it, once) before the exception goes on."""
    try:
        step()
    except (LockTimeout, StoreUnavailable):
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            undo()
        raise


def undo_if_cut_short(error: BaseException, undo: Callable[[], object]) -> None:
    """:func:`undone_if_cut_short`'s undo, for a caller whose step raised
    ``error`` inside its own ``try``. A lock's release calls its step there:
    an interrupt lands as a function is entered too, and one arriving as
    ``undone_if_cut_short`` itself was entered skipped the release."""
    if not isinstance(error, (LockTimeout, StoreUnavailable)):
        with contextlib.suppress(Exception):
            undo()


#: The key prefix of the Redis and memcached stores when none is given.
DEFAULT_KEY_PREFIX = "wsgisession:"

#: The ``key_prefix`` ini key of the stores that share a server's key space.
KEY_PREFIX_OPTION = IniOption(
    "key_prefix", "text or none", None,
    "Prefix of the store's keys; none for the store's default.",
    c.key_prefix, c.parse_optional_text,
)  # fmt: skip
