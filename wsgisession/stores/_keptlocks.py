"""The tokens of request-lock rows this process could not delete, by lock.

The SQL and SQLite stores keep a lock row's token when its release fails
(or its taking was cut short after it may have written the row), so that
the session's next taking in this process can take that row over at once
instead of waiting for ``lock_ttl``. Each process keeps its own: another
process, a forked child included, waits for ``lock_ttl``.
"""

from __future__ import annotations

import os
import threading

from ._shared import per_process

__all__ = ["TOKENS_KEPT", "UNRELEASED_KEPT", "KeptTokens"]

#: Locks whose release failed, kept for their next taker (bounded: an outage
#: or a busy file under heavy traffic leaves one per session locked then).
UNRELEASED_KEPT = 10_000
#: Tokens kept per lock: one row at a time holds it, but takings cut short
#: (an interrupt, a dropped connection) may each have been the row's.
TOKENS_KEPT = 8


class _ProcessTokens:
    """One process's kept tokens, and the lock that guards their changes."""

    __slots__ = ("guard", "tokens")

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, ...]] = {}
        self.guard = threading.Lock()


class KeptTokens:
    """Tokens of lock rows this process could not delete, by lock name.

    Each process has its own: a forked child is another process, which
    waits for ``lock_ttl`` like any other (and never waits for a guard a
    thread of its parent held at the fork).
    """

    def __init__(self) -> None:
        self._processes: dict[int, _ProcessTokens] = {}

    def _here(self) -> _ProcessTokens:
        return per_process(self._processes, self._start_here)

    def _start_here(self) -> _ProcessTokens:
        """This process's (empty) tokens; a parent's copy is let go."""
        for pid in list(self._processes):  # one step: other threads may add
            if pid != os.getpid():
                self._processes.pop(pid, None)
        return _ProcessTokens()

    def keep(self, name: str, token: str) -> None:
        """Remember ``token``'s row of lock ``name``, beside the last few kept."""
        here = self._here()
        with here.guard:
            kept = here.tokens.get(name)
            if kept is not None or len(here.tokens) < UNRELEASED_KEPT:
                here.tokens[name] = (*(kept or ()), token)[-TOKENS_KEPT:]

    def of(self, name: str) -> tuple[str, ...]:
        """The tokens kept for lock ``name`` (none, almost always)."""
        return self._here().tokens.get(name, ())

    def forget(self, name: str, tokens: tuple[str, ...]) -> None:
        """Drop ``tokens`` of lock ``name``: a taking ran with them. Tokens
        another thread kept meanwhile stay."""
        if not tokens:
            return
        here = self._here()
        with here.guard:
            left = tuple(
                kept for kept in here.tokens.get(name, ()) if kept not in tokens
            )
            if left:
                here.tokens[name] = left
            else:
                here.tokens.pop(name, None)

    def __len__(self) -> int:
        """How many locks have tokens kept in this process."""
        return len(self._here().tokens)
