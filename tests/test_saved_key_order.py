"""A record saved again from its kept text holds the session's data, in its order.

A save of a record this process wrote joins the new text from the
items kept for it (``encode_again``), trusting the change set to say when
keys were deleted or the data emptied. Whatever a request does to its
session (set, delete, pop, popitem, clear, flush, setdefault, update,
cycle_key, bind_user, set_expiry, a save of another request merged in, a
save in the middle of the request), the stored record must decode to the
session's data: the same items in the same order, valid JSON with no key
twice, and a fresh load (from the kept decoding) must agree with it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from helpers import examples, kept_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgisession import Session
from wsgisession.errors import UnserializableValue
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore

SERIALIZER = TaggedJSONSerializer()
KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", " d"])
VALUES = st.integers(0, 9) | st.text(max_size=2) | st.none() | st.booleans()
OPS = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUES),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("pop"), KEYS),
    st.tuples(st.just("setdefault"), KEYS, VALUES),
    st.tuples(st.just("update"), st.dictionaries(KEYS, VALUES, max_size=4)),
    st.tuples(st.just("set_expiry"), st.sampled_from([None, 0, 300])),
    st.tuples(st.just("other"), KEYS, VALUES),
    st.tuples(st.just("other_del"), KEYS),
    st.sampled_from(
        [
            ("popitem",),
            ("clear",),
            ("flush",),
            ("cycle_key",),
            ("bind_user",),
            ("save",),
            ("append",),
            ("append_in_values",),
        ]
    ),
)
REQUESTS = st.lists(st.lists(OPS, max_size=6), min_size=1, max_size=6)


def _no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"a key written twice: {names}"
    return dict(pairs)


def _check(store: MemoryStore, session: Session) -> None:
    """The stored record, decoded afresh, is the session's data in its order."""
    key = session.session_key
    assert key is not None
    record = store.load(key)
    assert record is not None
    json.loads(record.payload, object_pairs_hook=_no_twice)  # valid, no key twice
    parts = SERIALIZER.loads(record.payload)  # not the kept decoding
    stored = parts["data"]
    assert list(stored.items()) == list(session._data.items())  # type: ignore[union-attr]
    loaded = Session(store, session_key=key)
    assert list(loaded) == list(stored)
    assert dict(loaded) == stored
    kept = session._record
    assert kept is not None
    assert (parts["created"], parts["expiry"], parts.get("user")) == (
        kept.created,
        kept.expiry,
        kept.user,
    )
    assert (loaded.created, loaded.user_id) == (kept.created, kept.user)


def _other_request(store: MemoryStore, key: str | None, op: tuple) -> None:
    """Another request of the session saves meanwhile (merged on the next save)."""
    if key is None:
        return
    other = Session(store, session_key=key)
    if op[0] == "other":
        other[op[1]] = op[2]
    elif op[1] in other:
        del other[op[1]]
    if other.session_key is not None:
        other.save()


def _run(session: Session, store: MemoryStore, op: tuple) -> None:
    name, *args = op
    if name == "set":
        session[args[0]] = args[1]
    elif name == "del":
        if args[0] in session:
            del session[args[0]]
    elif name == "pop":
        session.pop(args[0], None)
    elif name == "setdefault":
        session.setdefault(args[0], args[1])
    elif name == "update":
        session.update(args[0])
    elif name == "set_expiry":
        session.set_expiry(args[0])
    elif name in ("other", "other_del"):
        record = session._record
        stored = record is not None and record.stored
        _other_request(store, record.key if stored else None, op)  # type: ignore[union-attr]
    elif name == "popitem":
        if len(session):
            session.popitem()
    elif name == "append":
        session.setdefault("list", []).append(1)
    elif name == "append_in_values":
        for value in session.values():
            if type(value) is list:
                value.append(2)
    elif name == "cycle_key":
        session.cycle_key()
    elif name == "bind_user":
        session.bind_user("ann")
    elif name == "clear":
        session.clear()
    elif name == "flush":
        session.flush()
    else:
        session.save()
        _check(store, session)


@settings(  # ORDER_EXAMPLES=3000 for a longer search (about 15 s)
    max_examples=int(os.environ.get("ORDER_EXAMPLES", examples(150))),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(requests=REQUESTS)
def test_every_save_stores_the_session_s_data_in_its_order(
    requests: list[list[tuple]],
) -> None:
    store = MemoryStore()
    key = None
    for ops in requests:
        session = Session(store, session_key=key)
        for op in ops:
            _run(session, store, op)
        session.save()
        _check(store, session)
        key = session.session_key
        saved = dict(session)
        session["late"] = 1  # after the last save (a streamed body): not kept
        session.pop("a", None)
        assert dict(Session(store, session_key=key)) == saved


def test_keys_added_to_a_kept_record_are_saved_in_the_order_they_were_set() -> None:
    store = MemoryStore()
    key = kept_session(store)
    session = Session(store, session_key=key)
    added = [f"key{n}" for n in range(12)]
    for name in added:
        session[name] = 1
    session.update({"u1": 1, "u2": 2, "u3": 3})
    session.save()
    stored = json.loads(store.load(key).payload)["data"]  # type: ignore[union-attr]
    assert list(stored) == ["a", *added, "u1", "u2", "u3"]
    assert list(stored) == list(session)


def test_keys_added_while_another_request_saved_keep_the_order_they_were_set() -> None:
    """A save that merges another request's save keeps the order in which
    the app added its keys (it followed the change set's set order)."""
    store = MemoryStore()
    key = kept_session(store)
    session = Session(store, session_key=key)
    assert session["a"] == 2  # loaded before the other request's save
    other = Session(store, session_key=key)
    other["b"] = 1
    other.save()
    added = [f"key{n}" for n in range(12)]
    for name in added:
        session[name] = 1
    session.save()
    stored = json.loads(store.load(key).payload)["data"]  # type: ignore[union-attr]
    assert list(stored) == ["a", "b", *added]
    assert list(stored) == list(session)


def test_a_non_string_key_added_to_a_kept_record_is_written_as_json_text() -> None:
    """As on a new session's save: 1 comes back as "1" (not a TypeError
    out of the JSON string escaper)."""
    store = MemoryStore()
    key = kept_session(store)
    session = Session(store, session_key=key)
    session[1] = "one"  # type: ignore[index]
    session.save()
    assert dict(Session(store, session_key=key)) == {"a": 2, "1": "one"}


def test_a_non_string_key_clashing_in_a_kept_record_names_the_key() -> None:
    store = MemoryStore()
    key = kept_session(store)
    session = Session(store, session_key=key)
    session["1"] = "uno"
    session[1] = "one"  # type: ignore[index]
    with pytest.raises(UnserializableValue, match="use str keys") as info:
        session.save()
    assert info.value.key == 1
    assert dict(Session(store, session_key=key)) == {"a": 2}


def test_a_key_the_tag_scheme_wraps_set_in_an_emptied_kept_record_loads() -> None:
    """A lone key that starts with a space is wrapped (``" dict"``) by the
    serializer; joined bare from the emptied record's kept text, it was
    read back as a tag: a corrupt record, the session lost elsewhere."""
    store = MemoryStore()
    key = kept_session(store)
    emptied = Session(store, session_key=key)
    del emptied["a"]
    emptied.save()  # kept: an empty data text
    session = Session(store, session_key=key)
    session[" d"] = "2024-01-01"
    session.save()
    stored = SERIALIZER.loads(store.load(key).payload)  # type: ignore[union-attr]
    assert stored["data"] == {" d": "2024-01-01"}
