"""Incremental cleanup: now and then, a save also sweeps some expired records.

File, SQLite and memory stores keep expired records until something
removes them; an app nobody runs ``wsgisession clear-expired`` for would
fill its disk. A :class:`Sweeper` lets at most one save per
``cleanup_interval`` seconds (per process) call the store's bounded
``sweep_expired``, so no single request pays for a full sweep. A sweep
that found expired records is followed by another a second later, so that
a busy site's expired sessions never pile up faster than they go (one
batch per interval is only 100 records per 300 s).
"""

from __future__ import annotations

import logging
import threading

from . import clock
from .stores.base import Store

__all__ = ["CATCH_UP_DELAY", "SWEEP_BATCH", "Sweeper"]

logger = logging.getLogger(__name__)

#: The most expired records one sweep removes.
SWEEP_BATCH = 100
#: Seconds to the next sweep after one that removed records (more may wait).
CATCH_UP_DELAY = 1.0


class Sweeper:
    """Runs ``store.sweep_expired(SWEEP_BATCH)`` at most once per ``interval``
    s, and :data:`CATCH_UP_DELAY` s after a sweep that removed records.

    ``interval`` 0 turns it off. The first save after start sweeps.
    """

    def __init__(self, store: Store, interval: int) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._due = float("-inf")
        self._swept_at = float("-inf")

    def after_save(self) -> None:
        """A save happened: sweep if the interval has passed (one caller does).

        The clock is read now, not taken from the save: a save that began
        before another's sweep may end after it (a slow or contended
        store), and a moment before the last sweep is a clock set back."""
        if not self.interval:
            return
        moment = clock.read()  # now(), without its frame: every save asks
        # Not due, the usual case, checked without the lock; a moment before
        # the last sweep means the wall clock was set back: due at once.
        if self._swept_at <= moment < self._due:
            return
        with self._lock:
            if self._swept_at <= moment < self._due:
                return
            self._due, self._swept_at = moment + self.interval, moment
        try:
            removed = self.store.sweep_expired(SWEEP_BATCH)
        except Exception:  # the save succeeded; cleanup can wait
            logger.warning(
                "sweeping expired sessions from %r failed; trying again in %d s",
                self.store,
                self.interval,
                exc_info=True,
            )
            return
        if removed:
            logger.debug("swept %d expired sessions from %r", removed, self.store)
            with self._lock:  # more may be waiting: look again soon
                self._due = min(self._due, moment + CATCH_UP_DELAY)

    def __repr__(self) -> str:
        return f"Sweeper({self.store!r}, interval={self.interval!r})"
