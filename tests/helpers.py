"""Shared test scaffolding: clocks, store factories and raw WSGI calls.

Test modules import from here (and from ``servers``/``session_flows``),
never from one another. Server fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from wsgisession import clock


class FakeClock:
    """A clock that stands still until moved: ``advance(seconds)``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"


@contextmanager
def fake_clock(start: float | None = None) -> Iterator[FakeClock]:
    """Every module of wsgisession reads ``FakeClock`` inside the block."""
    fake = FakeClock(start)
    with clock.use(fake):
        yield fake
