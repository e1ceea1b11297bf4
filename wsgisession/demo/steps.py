"""The shape of a tour step: a :class:`Section` of :class:`Action` buttons.

Kept apart from :mod:`.tour` (which lists the steps) so that a step with
its own module, such as :mod:`.users`, can build its actions from these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..middleware import SessionMiddleware
    from ..session import Session

__all__ = ["Action", "Context", "Section"]


@dataclass
class Context:
    """What an action, or a section's panel, may need beyond the session."""

    middleware: SessionMiddleware
    cookie_header: str
    #: The submitted form's fields (first value of each), for an action.
    form: Mapping[str, str] = field(default_factory=dict)
    user_agent: str = ""

    @property
    def client_side(self) -> bool:
        return bool(self.middleware.store.client_side)


@dataclass(frozen=True)
class Action:
    """One button: its form value, its label, and what it does."""

    name: str
    label: str
    apply: Callable[[Session, Context], str]


@dataclass(frozen=True)
class Section:
    """One step of the tour: a title, what it shows, and its buttons.

    A section with a ``panel`` draws its own HTML (from the session as the
    page load found it) in place of a plain row of buttons.
    """

    title: str
    intro: str
    actions: tuple[Action, ...]
    panel: Callable[[Session, Context], str] | None = None
