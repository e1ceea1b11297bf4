"""What a save writes, a load gives back: equal values of the same types, or
UnserializableValue naming the key at the save, never a loss at the load."""

from __future__ import annotations

import datetime
import decimal
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgisession import Session
from wsgisession.errors import UnserializableValue
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore
from wsgisession.stores.base import Store

JSON = TaggedJSONSerializer()

offsets = st.integers(-1439, 1439).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
zones = st.none() | st.just(datetime.UTC) | offsets
#: A datetime keeps a zoneinfo zone too (a time with one has no offset).
datetime_zones = zones | st.timezones()
texts = st.text(max_size=6) | st.sampled_from([" dt", " dict", "v", "\u2028", "\x00"])
leaves = st.one_of(
    texts,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
    st.datetimes(timezones=datetime_zones),
    st.dates(),
    st.times(timezones=zones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
# Sets made from lists: a set strategy's uniqueness filter would name the
# whole strategy in an event, a repr too long to make.
hashables = st.recursive(
    leaves,
    lambda inner: st.tuples(inner) | st.lists(inner, max_size=3).map(frozenset),
)
values = st.recursive(
    hashables,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(texts, inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.lists(hashables, max_size=3).map(set)
    ),
    max_leaves=10,
)


def same(saved: Any, loaded: Any) -> bool:
    """Equal and of the same types all the way down (NaN equal to NaN, -0.0 not 0.0)."""
    if type(saved) is not type(loaded):
        return False
    if isinstance(saved, float):
        return (math.isnan(saved) and math.isnan(loaded)) or (
            saved == loaded and math.copysign(1, saved) == math.copysign(1, loaded)
        )
    if isinstance(saved, (list, tuple)):
        return len(saved) == len(loaded) and all(map(same, saved, loaded))
    if isinstance(saved, dict):
        return list(saved) == list(loaded) and all(
            same(item, loaded[key]) for key, item in saved.items()
        )
    if isinstance(saved, (set, frozenset)):  # NaN members: compare their JSON
        return sorted(map(JSON.dumps, saved)) == sorted(map(JSON.dumps, loaded))
    if isinstance(saved, decimal.Decimal):
        return str(saved) == str(loaded)
    if isinstance(saved, datetime.datetime):  # in the same zone: the same next day
        return saved == loaded and saved.tzinfo == loaded.tzinfo
    if isinstance(saved, datetime.time):
        return saved == loaded and saved.utcoffset() == loaded.utcoffset()
    return bool(saved == loaded)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Store]:
    directory: Path = tmp_path_factory.mktemp("values")
    return {
        "memory": MemoryStore(),
        "file": FileStore(directory / "files"),
        "sqlite": SQLiteStore(directory / "sessions.sqlite3"),
    }


@pytest.mark.slow
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    kind=st.sampled_from(["memory", "file", "sqlite"]),
    data=st.dictionaries(texts, values, min_size=1, max_size=4),
)
def test_a_save_then_a_load_gives_back_the_values_and_their_types(
    stores: dict[str, Store], kind: str, data: dict[str, Any]
) -> None:
    session = Session(stores[kind])
    session.update(data)
    try:
        session.save()
    except UnserializableValue as exc:  # a big int or a lone surrogate, say
        assert exc.key in data
        return
    loaded = Session(stores[kind], session_key=session.session_key)
    assert same(data, dict(loaded.items()))
    assert not loaded.detect_changes(), "a value read back counts as changed"


def trail_of(pages: int) -> Any:
    """Pages visited, kept as pairs ``(page, earlier trail)``, as an app may."""
    trail = None
    for page in range(pages):
        trail = (f"/page/{page}", trail)
    return trail


def load_in_a_deep_stack(store: Store, key: str, frames: int) -> dict[str, Any]:
    """The session's data, loaded ``frames`` calls deeper (a framework's view)."""
    if frames:
        return load_in_a_deep_stack(store, key, frames - 1)
    return dict(Session(store, session_key=key))


def test_a_value_too_deep_to_load_back_is_refused_at_its_save() -> None:
    store = MemoryStore()
    for pages in range(25, 1000, 25):
        session = Session(store)
        session["trail"] = trail_of(pages)
        session["user"] = "alice"
        try:
            session.save()
        except UnserializableValue as exc:
            assert exc.key == "trail"
            continue
        assert session.session_key is not None
        loaded = load_in_a_deep_stack(store, session.session_key, 150)
        assert loaded.get("user") == "alice", f"a trail of {pages} lost the session"
        assert loaded["trail"] == trail_of(pages)
