"""A plain-dict model of the session as a mapping, for test_session_mapping_model.py.

What a request sees is a ``dict`` of the values it set (the same objects,
aliases and all); what a later request reads is that dict as JSON gives it
back (:func:`normalize`: keys of nested dicts turn to text, as in Django's
and Flask's sessions). A save applies the keys the request set, deleted or
changed in place to the record as it is then (docs/session.rst,
"Concurrent requests"); two keys of one dict written alike (``1`` and
``"1"``) make the save raise instead (:class:`Clash`).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from wsgisession.errors import UnserializableValue

__all__ = ["AppFailure", "Clash", "ModelRequest", "Request", "canon", "normalize"]


class Clash(ValueError):
    """Two keys of a dict that JSON writes alike: the save must refuse it."""


def json_key(key: Any) -> str:
    """The text JSON writes for the dict key ``key``."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if type(key) is int:
        return str(key)
    text = repr(key)  # a float
    return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(text, text)


def normalize(value: Any) -> Any:
    """``value`` as a later request loads it back."""
    kind = type(value)
    if kind is list:
        return [normalize(item) for item in value]
    if kind is tuple:
        return tuple(normalize(item) for item in value)
    if kind is dict:
        result: dict[str, Any] = {}
        for key, item in value.items():
            text = json_key(key)
            if text in result:
                raise Clash(text)
            result[text] = normalize(item)
        return result
    return value


def canon(value: Any) -> Any:
    """A hashable form equal for equal values of equal types (NaN equal to
    NaN, -0.0 not 0.0, 1 not True nor 1.0, a tuple not a list)."""
    kind = type(value)
    if kind is float:
        return ("float", repr(value))
    if kind in (int, bool, str, type(None)):
        return (kind.__name__, value)
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(map(canon, value)))
    if kind is dict:
        return ("dict", frozenset((canon(k), canon(v)) for k, v in value.items()))
    raise TypeError(f"no model of {kind.__name__}")


def clashes(value: Any) -> bool:
    try:
        normalize(value)
    except Clash:
        return True
    return False


class ModelRequest:
    """One request of one session on the model store ``records`` (key ->
    (version, data as stored)): the data as the request sees it and what it
    changed since its load or its last save."""

    def __init__(self, records: dict[str, tuple[int, dict[str, Any]]], key: str | None):
        self.records = records
        stored = records.get(key) if key is not None else None
        self.key = key if stored is not None else None
        self.version = stored[0] if stored is not None else 0
        self.data: dict[str, Any] = copy.deepcopy(stored[1]) if stored else {}
        self._fresh()

    def _fresh(self) -> None:
        """No change since now (a load or a save)."""
        self.base = {k: canon(normalize(v)) for k, v in self.data.items()}
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        self.cleared = False

    # -- what the request does ------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed.add(key)
        self.deleted.discard(key)

    def delete(self, key: str) -> Any:
        value = self.data.pop(key)
        self.deleted.add(key)
        self.changed.discard(key)
        return value

    def clear(self) -> None:
        self.data = {}
        self.changed, self.deleted, self.cleared = set(), set(), True

    def flush(self) -> None:
        if self.key is not None:
            del self.records[self.key]
        self.key, self.data = None, {}
        self._fresh()
        self.cleared = True

    # -- saving ------------------------------------------------------------------

    def detect(self) -> set[str]:
        """The keys to write: set, or changed in place since received."""
        found = set(self.changed)
        for key, value in self.data.items():
            if key in found or key not in self.base:
                continue  # set, or new: written anyway
            if clashes(value) or canon(normalize(value)) != self.base[key]:
                found.add(key)
        return found

    def refused(self) -> bool:
        """Whether a save now must raise UnserializableValue."""
        return any(clashes(self.data[key]) for key in self.detect())

    def has_changes(self) -> bool:
        return bool(self.detect() or self.deleted or self.cleared)

    def merged(self) -> dict[str, Any]:
        """The data a save writes now, onto the record as it is stored now."""
        written = self.detect()
        stored = self.records.get(self.key) if self.key is not None else None
        if stored is None or stored[0] == self.version:  # nobody saved meanwhile
            return self.data
        merged = {} if self.cleared else copy.deepcopy(stored[1])
        for key in list(merged):
            value = self.data.get(key)
            unchanged = key in self.data and key not in written
            if unchanged and canon(merged[key]) == self.base.get(key):
                merged[key] = value  # the object the request holds
        for key in written:
            merged[key] = self.data[key]
        for key in self.deleted:
            merged.pop(key, None)
        return merged

    def save(self, new_key: str | None, *, move: bool = False) -> None:
        """A save (``move``: ``cycle_key()``) that stored the record under
        ``new_key`` (the session's key after it)."""
        data = self.merged()
        if move and self.key is not None:
            del self.records[self.key]
        assert new_key is not None
        self.key = new_key
        version = max((v for v, _ in self.records.values()), default=0) + 1
        self.records[new_key] = (version, normalize(data))
        self.version, self.data = version, data
        self._fresh()


# -- a request's script, run on the session and on the model -------------------


class AppFailure(Exception):
    """The app's own exception: the request fails, nothing more is saved."""


def same(got: Any, expected: Any) -> None:
    assert canon(got) == canon(expected), (got, expected)


def mutate(value: Any, leaf: Any, inner_key: Any) -> bool:
    """Change ``value`` in place if it is a list or a dict; whether it was."""
    if type(value) is list:
        value.append(copy.deepcopy(leaf))
    elif type(value) is dict:
        value[inner_key] = copy.deepcopy(leaf)
    else:
        return False
    return True


class Request:
    """One request's run of a script on the session and on the model."""

    def __init__(self, machine: Any, session: Any, model: ModelRequest) -> None:
        self.machine, self.session, self.model = machine, session, model
        self.held: tuple[Any, Any] | None = None
        #: The first keys view the request took: live, as a dict's.
        self.view: Any = None

    def run(self, ops: list[tuple]) -> None:
        for op in ops:
            getattr(self, "op_" + op[0])(*op[1:])

    def received(self, path: str, key: str) -> tuple[Any, Any] | None:
        """The value of ``key`` through an accessor, the session's and the model's."""
        session, data = self.session, self.model.data
        if key not in data:
            with pytest.raises(KeyError):
                session[key]
            return None
        if path == "item":
            got = session[key]
        elif path == "get":
            got = session.get(key)
        elif path == "values":
            got = list(session.values())[list(session.keys()).index(key)]
        elif path == "items":
            got = dict(session.items())[key]
        elif path == "iter":
            got = next(v for k, v in iter(session.items()) if k == key)
        elif path == "setdefault":
            got = session.setdefault(key, "unused")
        else:  # pop, popitem: the value leaves, then comes back
            got = session.pop(key)
            session[key] = got
            self.model.set(key, self.model.delete(key))
        same(got, data[key])
        return got, data[key]

    # -- the operations -----------------------------------------------------------

    def op_get(self, key: str) -> None:
        same(self.session.get(key), self.model.data.get(key))

    def op_item(self, key: str) -> None:
        self.received("item", key)

    def op_contains(self, key: str) -> None:
        assert (key in self.session) == (key in self.model.data)

    def op_len(self) -> None:
        assert len(self.session) == len(self.model.data)

    def op_keys(self) -> None:
        if self.view is None:
            self.view = self.session.keys()
        assert sorted(self.view) == sorted(self.model.data)
        assert sorted(self.session) == sorted(self.model.data)

    def op_values(self) -> None:
        got = Counter(map(canon, self.session.values()))
        assert got == Counter(map(canon, self.model.data.values()))

    def op_items(self) -> None:
        same(dict(self.session.items()), self.model.data)

    def op_eq(self) -> None:
        assert canon(dict(self.session)) == canon(self.model.data)

    def op_set(self, key: str, value: Any) -> None:
        self.session[key] = copy.deepcopy(value)
        self.model.set(key, copy.deepcopy(value))

    def op_del(self, key: str) -> None:
        if key in self.model.data:
            del self.session[key]
            self.model.delete(key)
        else:
            with pytest.raises(KeyError):
                del self.session[key]

    def op_pop(self, key: str) -> None:
        if key in self.model.data:
            same(self.session.pop(key), self.model.delete(key))
        else:
            with pytest.raises(KeyError):
                self.session.pop(key)

    def op_pop_default(self, key: str) -> None:
        expected = self.model.delete(key) if key in self.model.data else "none"
        same(self.session.pop(key, "none"), expected)

    def op_popitem(self) -> None:
        if not self.model.data:
            with pytest.raises(KeyError):
                self.session.popitem()
            return
        key, value = self.session.popitem()
        same(value, self.model.delete(key))

    def op_setdefault(self, key: str, value: Any) -> None:
        if key not in self.model.data:
            self.model.set(key, copy.deepcopy(value))
        same(self.session.setdefault(key, copy.deepcopy(value)), self.model.data[key])

    def op_setdefault_new(self, key: str) -> None:
        """The default the session stores is the object returned: changes to it count."""
        if key in self.model.data:
            self.received("setdefault", key)
            return
        self.model.set(key, [])
        self.session.setdefault(key, []).append(1)
        self.model.data[key].append(1)

    def op_update_map(self, values: dict[str, Any]) -> None:
        self.session.update(copy.deepcopy(values))
        for key, value in values.items():
            self.model.set(key, copy.deepcopy(value))

    def op_update_pairs(self, values: dict[str, Any]) -> None:
        self.session.update(list(copy.deepcopy(values).items()))
        for key, value in values.items():
            self.model.set(key, copy.deepcopy(value))

    def op_update_kwargs(self, values: dict[str, Any]) -> None:
        self.session.update(**copy.deepcopy(values))
        for key, value in values.items():
            self.model.set(key, copy.deepcopy(value))

    def op_mutate(self, path: str, key: str, leaf: Any, inner_key: Any) -> None:
        pair = self.received(path, key)
        if pair is not None:
            mutate(pair[0], leaf, inner_key)
            mutate(pair[1], leaf, inner_key)

    def op_alias(self, source: str, target: str) -> None:
        """The same object under two keys: a change through one shows in both."""
        pair = self.received("item", source)
        if pair is not None:
            self.session[target] = pair[0]
            self.model.set(target, pair[1])

    def op_hold(self, key: str) -> None:
        self.held = self.received("item", key)

    def op_mutate_held(self, leaf: Any, inner_key: Any) -> None:
        """A value received earlier, changed now (after a save, maybe)."""
        if self.held is not None:
            mutate(self.held[0], leaf, inner_key)
            mutate(self.held[1], leaf, inner_key)

    def op_clear(self) -> None:
        self.session.clear()
        self.model.clear()

    def op_flush(self) -> None:
        self.session.flush()
        self.model.flush()

    def op_save(self) -> None:
        self._saving(self.session.save)

    def op_cycle_key(self) -> None:
        self._saving(self.session.cycle_key, move=True)

    def _saving(self, save: Any, *, move: bool = False) -> None:
        if self.model.refused():
            with pytest.raises(UnserializableValue):
                save()
            raise AppFailure()
        save()
        self.model.save(self.session.session_key, move=move)

    def op_tab2(self, ops: list[tuple]) -> None:
        self.machine.request(ops, "200 OK")
