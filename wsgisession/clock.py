"""The one clock: every module asks :func:`now` for the current Unix time.

Sessions, stores, expiry rules and cookies all read the time here, so
that they agree with one another and a test can move time for all of them
at once with :func:`use` (a ``time.time``-like callable).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["now", "use"]

_source: Callable[[], float] = time.time


def now() -> float:
    """The current Unix time, as the clock in use tells it."""
    return _source()


@contextmanager
def use(source: Callable[[], float]) -> Iterator[None]:
    """Read the time from ``source`` inside the block (tests); restores the clock after."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
