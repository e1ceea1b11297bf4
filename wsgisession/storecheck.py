"""Building a command's store and reaching it once, with errors a user can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SessionError, StoreUnavailable
from .keys import generate_key

if TYPE_CHECKING:
    from .config import StoreSpec
    from .stores.base import Store

__all__ = ["build_store", "reach_store", "unreachable"]


def build_store(spec: StoreSpec) -> Store:
    """The store; a missing extra becomes a SessionError naming the pip command."""
    try:
        return spec.build()
    except ImportError as exc:
        raise SessionError(str(exc)) from None


def unreachable(exc: StoreUnavailable, hint: str) -> SessionError:
    """One line: what failed, then how to fix it."""
    return SessionError(f"cannot reach the store: {str(exc).rstrip('.')}; {hint}")


def reach_store(store: Store, hint: str) -> None:
    """Ask the store about a made-up key once; SessionError with ``hint`` if it fails."""
    try:
        store.exists(generate_key())
    except StoreUnavailable as exc:
        raise unreachable(exc, hint) from None
