"""Incremental cleanup: now and then, a save also sweeps some expired records.

File, SQLite and memory stores keep expired records until something
removes them; an app nobody runs ``wsgisession clear-expired`` for would
fill its disk. A :class:`Sweeper` lets at most one save per
``cleanup_interval`` seconds (per process) call the store's bounded
``sweep_expired``, so no single request pays for a full sweep. A sweep
that found expired records is followed by another a second later, or
after :data:`CATCH_UP_SAVES` saves if sooner, so that a busy site's
expired sessions never pile up faster than they go: one batch per
interval is only 100 records per 300 s, and one a second only 100 a
second (a process making more sessions than that, which expire
unvisited, grew its store without bound). A save makes at most one
record, and the file and SQLite stores' sweeps look at a window of
records (100 files, 1,000 keys) and remove the expired ones in it, so a
sweep per 50 saves keeps the expired ones below about as many as the
live ones however fast sessions are made.
"""

from __future__ import annotations

import logging
import threading

from . import clock
from .stores.base import Store

__all__ = ["CATCH_UP_DELAY", "CATCH_UP_SAVES", "SWEEP_BATCH", "Sweeper"]

logger = logging.getLogger(__name__)

#: The most expired records one sweep removes.
SWEEP_BATCH = 100
#: Seconds to the next sweep after one that removed records (more may wait).
CATCH_UP_DELAY = 1.0
#: Saves to the next sweep after one that removed records, if sooner.
CATCH_UP_SAVES = 50
_NEVER = 1 << 62  # saves: the interval alone makes the next sweep due


class Sweeper:
    """Runs ``store.sweep_expired(SWEEP_BATCH)`` at most once per ``interval``
    s, and :data:`CATCH_UP_DELAY` s or :data:`CATCH_UP_SAVES` saves (the
    sooner) after a sweep that removed records.

    ``interval`` 0 turns it off. The first save after start sweeps.
    """

    def __init__(self, store: Store, interval: int) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._due = float("-inf")
        self._swept_at = float("-inf")
        self._saves_left = _NEVER

    def after_save(self) -> None:
        """A save happened: sweep if the interval has passed (one caller does).

        The clock is read now, not taken from the save: a save that began
        before another's sweep may end after it (a slow or contended
        store), and a moment before the last sweep is a clock set back."""
        if not self.interval:
            return
        moment = clock.read()  # now(), without its frame: every save asks
        self._saves_left -= 1  # not atomic: a count lost delays a sweep a save
        # Not due, the usual case, checked without the lock; a moment before
        # the last sweep means the wall clock was set back: due at once.
        if self._swept_at <= moment < self._due and self._saves_left > 0:
            return
        with self._lock:
            if self._swept_at <= moment < self._due and self._saves_left > 0:
                return
            self._due, self._swept_at = moment + self.interval, moment
            self._saves_left = _NEVER
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
                self._saves_left = CATCH_UP_SAVES

    def __repr__(self) -> str:
        return f"Sweeper({self.store!r}, interval={self.interval!r})"
