"""The one clock: every module asks :func:`now` for the current Unix time.

Sessions, stores, expiry rules and cookies all read the time here, so
that they agree with one another and a test can move time for all of them
at once with :func:`use` (a ``time.time``-like callable).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["now", "read", "save_moment", "use"]

#: The clock in use (``time.time`` unless :func:`use` says otherwise): what
#: :func:`now` calls, and what a hot path calls itself as ``clock.read()``
#: (no frame of :func:`now`'s between). Read through the module, never
#: imported by name: that would keep the clock of the moment.
read: Callable[[], float] = time.time

#: Below 2**32 s (the year 2106) the shortest repr of a time to the
#: microsecond is its six decimals without trailing zeros: written from an
#: integer count of microseconds, it costs a tenth of ``float.__repr__``.
_MICROSECOND_TEXT_BELOW = 2.0**32


def now() -> float:
    """The current Unix time, as the clock in use tells it."""
    return read()


def save_moment(now: float | None = None) -> tuple[float, str | None]:
    """``now`` (by default, the clock's time) to the nearest microsecond, the
    time a save writes in its record, and its JSON text for
    ``_recordtext.record_text``; None past the year 2106.

    Formatting a full precision time stamp (``float.__repr__``) would be
    the costliest step of joining a record's text. The clock is read here,
    not by a call of :func:`now`: every save asks for its moment.
    """
    if now is None:
        now = read()
    if not 1.0 <= now < _MICROSECOND_TEXT_BELOW:
        return now, None
    # Rounded, not truncated: 1.000001 * 1e6 is 1000000.9999999999.
    microseconds = round(now * 1_000_000)
    digits = str(microseconds)
    return microseconds / 1_000_000, f"{digits[:-6]}.{digits[-6:].rstrip('0') or '0'}"


@contextmanager
def use(source: Callable[[], float]) -> Iterator[None]:
    """Read the time from ``source`` inside the block (tests); restores the clock after."""
    global read
    previous, read = read, source
    try:
        yield
    finally:
        read = previous
