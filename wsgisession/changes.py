"""What one request changed in its session, to apply to the record as it is now.

A save never writes back a whole snapshot taken at load time: when another
request changed the record meanwhile, only the keys this request set or
deleted (or a ``clear()``, or a new expiry) are applied on top of what the
store holds, so that concurrent requests changing different keys both
survive. Values of mutable types are also compared with their serialized
form at load time, so that ``session["cart"].append(x)`` counts as a change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .envelope import Envelope
from .expiry import Expiry

__all__ = ["ChangeSet", "snapshot"]

_IMMUTABLE = (str, int, float, bool, type(None), bytes)

Dumps = Callable[[Any], bytes]


def snapshot(data: dict[str, Any], dumps: Dumps) -> dict[str, bytes]:
    """The serialized form of each value of a mutable type, to compare later."""
    return {
        key: dumps(value)
        for key, value in data.items()
        if type(value) not in _IMMUTABLE
    }


class ChangeSet:
    """The keys set and deleted, a clear, a new expiry; and the load-time snapshots."""

    __slots__ = ("changed", "cleared", "deleted", "expiry_changed", "snapshots")

    def __init__(self, snapshots: dict[str, bytes] | None = None) -> None:
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        self.cleared = False
        self.expiry_changed = False
        self.snapshots: dict[str, bytes] = {} if snapshots is None else snapshots

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.cleared or self.expiry_changed)

    def set(self, key: str) -> None:
        self.changed.add(key)
        self.deleted.discard(key)

    def delete(self, key: str) -> None:
        self.deleted.add(key)
        self.changed.discard(key)

    def clear(self) -> None:
        """Everything before is dropped: the record is emptied on save."""
        self.cleared = True
        self.changed.clear()
        self.deleted.clear()
        self.snapshots.clear()

    def watch(self, data: dict[str, Any], dumps: Dumps) -> None:
        """Start afresh (after a load or save): snapshot the mutable values of ``data``."""
        self.changed.clear()
        self.deleted.clear()
        self.cleared = self.expiry_changed = False
        self.snapshots = snapshot(data, dumps)

    def detect(self, data: dict[str, Any], dumps: Dumps) -> bool:
        """Mark the values changed in place since the snapshot; True if any were."""
        found = False
        for key, snapshot in self.snapshots.items():
            if key in data and key not in self.changed and dumps(data[key]) != snapshot:
                self.changed.add(key)
                found = True
        return found

    def apply(self, base: Envelope, data: dict[str, Any], expiry: Expiry) -> Envelope:
        """``base`` (the record as stored now) with these changes, taken from ``data``."""
        merged = {} if self.cleared else dict(base.data)
        for key in self.changed:
            merged[key] = data[key]
        for key in self.deleted:
            merged.pop(key, None)
        return base._replace(
            data=merged, expiry=expiry if self.expiry_changed else base.expiry
        )

    def __repr__(self) -> str:
        return (
            f"<ChangeSet set={sorted(self.changed)} deleted={sorted(self.deleted)} "
            f"cleared={self.cleared} expiry_changed={self.expiry_changed}>"
        )
