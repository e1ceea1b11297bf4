"""Warnings a client can trigger, logged at most once per period, or once
per item.

A bad cookie is the client's doing: logging a WARNING for every one would
let an attacker fill the logs with one request after another. A
:class:`ThrottledWarning` logs the first occurrence in a period as a
WARNING and the rest at DEBUG, and its next WARNING says how many were
held back. A :class:`WarningPerItem` logs a WARNING the first time an
item (a corrupt record) is met, and at DEBUG when the same one comes back
with another request of its cookie (or at INFO first, for a notice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from typing import Any

from . import clock

__all__ = ["ThrottledWarning", "WarningPerItem"]


class ThrottledWarning:
    """One kind of warning on ``logger``: a WARNING at most once per ``period`` s."""

    def __init__(self, logger: logging.Logger, period: float = 60.0) -> None:
        self.logger = logger
        self.period = period
        self._lock = threading.Lock()
        self._quiet_until = float("-inf")
        self._held_back = 0

    def __call__(self, message: str, *args: Any) -> None:
        """Log ``message % args``: as a WARNING, or at DEBUG within the period."""
        moment = clock.now()
        with self._lock:
            quiet_until = self._quiet_until
            # Also loud before the last WARNING: the wall clock was set back
            # (NTP), which must not silence the warnings until it catches up.
            loud = not quiet_until - self.period <= moment < quiet_until
            if loud:
                held_back, self._held_back = self._held_back, 0
                self._quiet_until = moment + self.period
            else:
                self._held_back += 1
        if not loud:
            self.logger.debug(message, *args)
        elif held_back:
            self.logger.warning(
                message + " (and %d more like it since the last such warning, "
                "logged at DEBUG: at most one WARNING per %g s)",
                *args,
                held_back,
                self.period,
            )
        else:
            self.logger.warning(message, *args)

    def __repr__(self) -> str:
        return f"ThrottledWarning({self.logger.name!r}, period={self.period!r})"


class WarningPerItem:
    """One kind of warning on ``logger``: a WARNING once per item, then DEBUG.

    The last ``remembered`` items are kept, so that a process warns once
    about each of them however often a client sends it again. ``level``
    is that of the first line (a notice that is no warning: INFO).
    """

    def __init__(
        self,
        logger: logging.Logger,
        remembered: int = 4096,
        level: int = logging.WARNING,
    ) -> None:
        self.logger = logger
        self.remembered = remembered
        self.level = level
        self._lock = threading.Lock()
        self._seen: dict[Hashable, None] = {}

    def __call__(self, item: Hashable, message: str, *args: Any) -> None:
        """Log ``message % args``: a WARNING unless ``item`` was warned about."""
        with self._lock:
            seen = item in self._seen
            if not seen:
                self._seen[item] = None
                if len(self._seen) > self.remembered:
                    del self._seen[next(iter(self._seen))]  # the oldest
        self.logger.log(logging.DEBUG if seen else self.level, message, *args)

    def __repr__(self) -> str:
        return (
            f"WarningPerItem({self.logger.name!r}, remembered={self.remembered!r}, "
            f"level={logging.getLevelName(self.level)!r})"
        )
