"""The tokens of request locks this process could not release, by lock.

Every store with request locks keeps a lock's token when its release
fails (or its taking was cut short after it may have stored the lock), so
that the session's next taking in this process can take that lock over at
once instead of waiting for ``lock_ttl``. Each process keeps its own:
another process, a forked child included, waits for ``lock_ttl``.

A token is worth keeping only until its lock expires by itself: past that
moment anybody takes the lock over. Kept longer, the tokens of sessions
that never came back stayed for the life of the process, and once outages
over the days had left :data:`UNRELEASED_KEPT` of them, no lock whose
release failed was kept any more: each locked its session for ``lock_ttl``.
"""

from __future__ import annotations

import os
import threading
from typing import Generic, TypeVar

from ..clock import now
from ._shared import per_process

__all__ = ["TOKENS_KEPT", "UNRELEASED_KEPT", "KeptTokens"]

#: Locks whose release failed, kept for their next taker (bounded: an outage
#: or a busy file under heavy traffic leaves one per session locked then).
UNRELEASED_KEPT = 10_000
#: Tokens kept per lock: one holder at a time holds it, but takings cut
#: short (an interrupt, a dropped connection) may each have been its holder.
TOKENS_KEPT = 8

Token = TypeVar("Token")  # a lock's random token: str or bytes


class _ProcessTokens(Generic[Token]):
    """One process's kept tokens, each lock's with the moment it expires by
    itself, and the lock that guards their changes."""

    __slots__ = ("guard", "tokens")

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[float, tuple[Token, ...]]] = {}
        self.guard = threading.Lock()

    def prune(self) -> None:
        """Drop the locks that have expired by themselves (caller holds ``guard``)."""
        moment = now()
        for name, (until, _) in list(self.tokens.items()):
            if until <= moment:
                del self.tokens[name]


class KeptTokens(Generic[Token]):
    """Tokens of request locks this process could not release, by lock name,
    until the moment each lock expires by itself.

    Each process has its own: a forked child is another process, which
    waits for ``lock_ttl`` like any other (and never waits for a guard a
    thread of its parent held at the fork).
    """

    def __init__(self) -> None:
        self._processes: dict[int, _ProcessTokens[Token]] = {}

    def _here(self) -> _ProcessTokens[Token]:
        return per_process(self._processes, self._start_here)

    def _start_here(self) -> _ProcessTokens[Token]:
        """This process's (empty) tokens; a parent's copy is let go."""
        for pid in list(self._processes):  # one step: other threads may add
            if pid != os.getpid():
                self._processes.pop(pid, None)
        return _ProcessTokens()

    def keep(self, name: str, token: Token, until: float) -> None:
        """Remember ``token``'s hold of lock ``name``, which expires by
        itself at ``until`` at the latest, beside the last few kept. When
        the table is full, the locks expired meanwhile make room."""
        here = self._here()
        with here.guard:
            kept = here.tokens.get(name)
            if kept is not None:
                tokens = (*kept[1], token)[-TOKENS_KEPT:]
                here.tokens[name] = (max(kept[0], until), tokens)
                return
            if len(here.tokens) >= UNRELEASED_KEPT:
                here.prune()
            if len(here.tokens) < UNRELEASED_KEPT:
                here.tokens[name] = (until, (token,))

    def of(self, name: str) -> tuple[Token, ...]:
        """The tokens kept for lock ``name`` that may still hold it (none,
        almost always)."""
        kept = self._here().tokens.get(name)
        if kept is None or kept[0] <= now():
            return ()
        return kept[1]

    def forget(self, name: str, tokens: tuple[Token, ...]) -> None:
        """Drop ``tokens`` of lock ``name``: a taking ran with them. Tokens
        another thread kept meanwhile stay."""
        if not tokens:
            return
        here = self._here()
        with here.guard:
            until, kept = here.tokens.get(name, (0.0, ()))
            left = tuple(token for token in kept if token not in tokens)
            if left:
                here.tokens[name] = (until, left)
            else:
                here.tokens.pop(name, None)

    def drop(self, name: str) -> None:
        """Drop every token of lock ``name``: it is known to be no one's of ours."""
        here = self._here()
        if name in here.tokens:  # almost never: no guard taken otherwise
            with here.guard:
                here.tokens.pop(name, None)

    def __contains__(self, name: object) -> bool:
        """Whether tokens that may still hold lock ``name`` are kept."""
        return isinstance(name, str) and bool(self.of(name))

    def __len__(self) -> int:
        """How many locks have tokens kept in this process (expired ones
        included until room is made)."""
        return len(self._here().tokens)
