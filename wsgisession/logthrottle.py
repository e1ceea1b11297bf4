"""Warnings a client can trigger, logged at most once per period.

A bad cookie is the client's doing: logging a WARNING for every one would
let an attacker fill the logs with one request after another. A
:class:`ThrottledWarning` logs the first occurrence in a period as a
WARNING and the rest at DEBUG, and its next WARNING says how many were
held back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from . import clock

__all__ = ["ThrottledWarning"]


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
            loud = moment >= self._quiet_until
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
