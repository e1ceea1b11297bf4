"""What the command line writes to: a progress bar on a terminal, and the
standard streams as a shell or a supervisor may hand them over (closed,
piped to a reader that leaves, unable to encode a user id)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TextIO

__all__ = [
    "ProgressBar",
    "closed_stderr_to_nowhere",
    "escape_unprintable_output",
    "on_a_terminal",
    "silence_stdout",
]


def on_a_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` is a terminal; a closed one (``2>&-``: None) is not."""
    return stream is not None and stream.isatty()


class ProgressBar:
    """A one-line bar on a terminal, drawn once a run has lasted a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO, delay: float = 1.0) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.delay = delay
        self.drawn = False

    def __repr__(self) -> str:
        return f"ProgressBar(drawn={self.drawn})"

    def update(self, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay or total <= 0:
            return
        filled = self.WIDTH * min(done, total) // total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {100 * done // total:3d}% ({done}/{total})")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def silence_stdout() -> None:
    """Output left, and the exit's flush, go to /dev/null: no "Exception ignored"."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: no descriptor
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def escape_unprintable_output() -> None:
    """What stdout's encoding lacks (a user id's emoji on a latin-1 terminal)
    is written escaped, as on stderr: no UnicodeEncodeError after the work."""
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not a file
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def closed_stderr_to_nowhere() -> None:
    """With standard error closed (``2>&-``: None), ``print(file=sys.stderr)``
    writes to stdout, into the output scripts read: messages go nowhere."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
