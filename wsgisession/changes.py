"""What one request changed in its session, to apply to the record as it is now.

A save never writes back a whole snapshot taken at load time: when another
request changed the record meanwhile, only the keys this request set or
deleted (or a ``clear()``, or a new expiry) are applied on top of what the
store holds, so that concurrent requests changing different keys both
survive. Values of mutable types are also compared with their serialized
form as the request received them, so that ``session["cart"].append(x)``
counts as a change. That snapshot is taken lazily, when the session first
hands the value out (the request cannot change a value it never saw), so a
request that reads one string serializes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from .envelope import IMMUTABLE_TYPES, Envelope
from .expiry import Expiry

__all__ = ["ChangeSet", "bare_change_set"]

Dumps = Callable[[Any], bytes]


def _differs(dumps: Dumps, value: Any, snapshot: bytes) -> bool:
    """Whether ``value`` is no longer serialized as ``snapshot``: also when
    the serializer now refuses it (the save that writes it raises
    UnserializableValue naming its key, as for an assigned one)."""
    try:
        return dumps(value) != snapshot
    except Exception:  # noqa: BLE001 - whatever the serializer raises
        return True


class ChangeSet:
    """The keys set and deleted, a clear, a new expiry; and the values' snapshots.

    ``snapshots`` holds the serialized form of each mutable value the
    session handed out, as it was then; ``all_handed_out`` says that the
    request was given every value (``values()``, ``items()``);
    ``reordered`` that a key was deleted (or the data cleared) since the
    last save, so that the data's keys may no longer be in the record's
    order (a key deleted and set again comes last).
    """

    # No slots: these three are class defaults until set, so that a
    # request's first change (:data:`bare_change_set`) sets only what a save reads.
    cleared = False
    expiry_changed = False
    all_handed_out = False
    #: key -> (value, snapshot): a value the request holds, left unchanged
    #: by it, that a merged save replaced with another request's. Compared
    #: like a snapshot: changed in place later, it is the request's again.
    outdated: dict[str, tuple[Any, bytes]] | None = None

    def __init__(self) -> None:
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        self.cleared = False
        self.expiry_changed = False
        self.all_handed_out = False
        self.reordered = False
        self.snapshots: dict[str, bytes] = {}

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.cleared or self.expiry_changed)

    def set(self, key: str) -> None:
        self.changed.add(key)
        self.deleted.discard(key)

    def delete(self, key: str) -> None:
        self.reordered = True
        self.deleted.add(key)
        self.changed.discard(key)

    def clear(self) -> None:
        """Everything before is dropped: the record is emptied on save."""
        self.cleared = self.reordered = True
        self.outdated = None
        self.changed.clear()
        self.deleted.clear()
        self.snapshots.clear()
        self.all_handed_out = False

    def hand_out(self, key: str, value: Any, dumps: Dumps) -> None:
        """Snapshot ``value`` (of a mutable type) as the request first receives it."""
        if key not in self.snapshots and key not in self.changed:
            self.snapshots[key] = dumps(value)

    def hand_out_all(self, data: dict[str, Any], dumps: Dumps) -> None:
        """The request receives every value (a values or items view)."""
        snapshots, changed = self.snapshots, self.changed
        for key, value in tuple(data.items()):  # another thread may set a key
            if (
                type(value) not in IMMUTABLE_TYPES
                and key not in snapshots
                and key not in changed
            ):
                snapshots[key] = dumps(value)
        self.all_handed_out = True

    def watch(self, data: dict[str, Any], dumps: Dumps) -> None:
        """Start afresh after a save: snapshot again the mutable values the
        request holds (those handed out or set), so later in-place changes
        are still seen."""
        if self.all_handed_out:
            held: Iterable[str] = tuple(data)
        elif self.snapshots:
            held = self.snapshots.keys() | self.changed
        else:
            held = tuple(self.changed)  # read before it is cleared below
        snapshots = {}
        for key in held:
            value = data.get(key)
            if type(value) not in IMMUTABLE_TYPES:
                snapshots[key] = dumps(value)
        self.snapshots = snapshots
        outdated = self.outdated
        if outdated:  # a key set or deleted since: its value is not held any more
            for key in tuple(outdated):
                if key in self.changed or key in self.deleted:
                    del outdated[key]
        self.changed.clear()
        self.deleted.clear()
        self.cleared = self.expiry_changed = self.reordered = False

    def detect(self, data: dict[str, Any], dumps: Dumps) -> bool:
        """Mark the values changed in place since the snapshot; True if any were.

        A value changed into one the serializer refuses counts as changed:
        a save raises UnserializableValue naming its key, as for an assigned
        one, and a response that saves nothing (a 5xx) is not failed by it.
        """
        found = False
        # A copy: another thread sharing the session may be handed a value.
        for key, snapshot in tuple(self.snapshots.items()):
            if (
                key in data
                and key not in self.changed
                and _differs(dumps, data[key], snapshot)
            ):
                self.changed.add(key)
                found = True
        outdated = self.outdated
        if outdated:
            found = self._detect_outdated(outdated, data, dumps) or found
        return found

    def _detect_outdated(
        self, outdated: dict[str, tuple[Any, bytes]], data: dict[str, Any], dumps: Dumps
    ) -> bool:
        """:meth:`detect` of the values a merged save replaced: one the request
        changed in place since is set again (the later save wins)."""
        found = False
        for key, (value, snapshot) in tuple(outdated.items()):
            if key in self.changed or key in self.deleted:  # set or deleted since
                continue
            if _differs(dumps, value, snapshot):
                del outdated[key]
                data[key] = value
                self.changed.add(key)
                found = True
        return found

    def apply(
        self, base: Envelope, data: dict[str, Any], expiry: Expiry, dumps: Dumps
    ) -> Envelope:
        """``base`` (the record as stored now) with these changes, taken from ``data``."""
        merged = {} if self.cleared else dict(base.data)
        for key, snapshot in tuple(self.snapshots.items()):
            # A value the request received and no request changed stays the
            # object the request holds, so that a change it makes to it after
            # the save is seen. Unchanged means the same serialized form: ==
            # would take 1.0 for 1, or an object for another with its id.
            unchanged = key in merged and key in data and key not in self.changed
            if unchanged and dumps(merged[key]) == snapshot:
                merged[key] = data[key]
            elif unchanged:  # another request's value replaces the one held
                if self.outdated is None:
                    self.outdated = {}
                self.outdated[key] = (data[key], snapshot)
        changed = self.changed
        # Keys new to the record go in as the app added them, in data's order.
        for key in changed if len(changed) == 1 else [k for k in data if k in changed]:
            merged[key] = data[key]
        for key in tuple(self.deleted):
            merged.pop(key, None)
        return base._replace(
            data=merged, expiry=expiry if self.expiry_changed else base.expiry
        )

    def __repr__(self) -> str:
        return (
            f"<ChangeSet set={sorted(self.changed)} deleted={sorted(self.deleted)} "
            f"cleared={self.cleared} expiry_changed={self.expiry_changed}>"
        )


#: A ``ChangeSet`` with no attribute set, made without running ``__init__``:
#: a request's first change (``Session.__setitem__``) sets ``changed``,
#: ``deleted``, ``reordered`` and ``snapshots`` on it, as ``ChangeSet()``
#: then :meth:`ChangeSet.set` would (the rest are the class's defaults). A
#: Python ``__init__``, the ``set()`` call, and a function making it cost
#: each writing request about 1K instructions more.
bare_change_set = functools.partial(object.__new__, ChangeSet)
