"""Legitimate but extreme session contents: a ``time`` in a ``zoneinfo``
zone, a long list of plain values, thousands of keys. What comes back is
what went in, on every store, and the save's work grows with the data at
the serializer's own pace."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import saved_session, store_fixture

from wsgisession import Session, envelope, serializers
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Store

store = store_fixture(["memory", "file", "sqlite", "memcached", "redis"])

PARIS = ZoneInfo("Europe/Paris")


def saved_and_loaded(store: Store, value: object) -> Any:
    """``value`` saved by one request and read by the next."""
    session = Session(store)
    session["value"] = value
    session.save()
    return Session(store, session_key=session.session_key)["value"]


def test_a_time_in_a_zoneinfo_zone_comes_back_in_it(store: Store) -> None:
    """It came back naive: ``time.isoformat()`` writes no offset for a
    ``ZoneInfo`` (a time alone has none), so the zone was lost silently."""
    opening = datetime.time(9, 30, tzinfo=PARIS)
    loaded = saved_and_loaded(store, {"opens": opening, "plain": datetime.time(9)})
    assert loaded["opens"] == opening
    assert loaded["opens"].tzinfo is PARIS
    assert loaded["plain"].tzinfo is None


@pytest.mark.parametrize("fold", [0, 1])
def test_a_naive_time_keeps_its_fold(store: Store, fold: int) -> None:
    """``fold`` tells a repeated hour's two times apart, as a datetime's does."""
    loaded = saved_and_loaded(store, datetime.time(2, 30, fold=fold))
    assert (loaded, loaded.fold) == (datetime.time(2, 30), fold)


def counted(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[object]:
    """Replace ``module.name`` with a wrapper that records each call's first argument."""
    calls: list[object] = []
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("container", [list, tuple])
def test_a_container_of_plain_values_is_tagged_whole(
    monkeypatch: pytest.MonkeyPatch, container: type
) -> None:
    """Tagging called itself once per item of a list or tuple (100,000
    ints: 100,000 calls, four times in a request that reads and saves it,
    190 ms), where a dict of plain values is taken as it is."""
    numbers = container(range(100_000))
    mixed = container([1, "a", None, (2, [3])])
    calls = counted(monkeypatch, serializers, "_tag")
    serializer = serializers.TaggedJSONSerializer()
    loaded = serializer.loads(serializer.dumps({"n": numbers, "m": mixed}))
    assert loaded == {"n": numbers, "m": mixed}
    assert type(loaded["n"]) is container
    # The dict, its two containers, and the two inside ``mixed``.
    assert len(calls) == 5


def test_data_too_large_to_keep_is_written_by_the_serializer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record's text was joined item by item, in Python, for the next
    save to reuse, even for data of thousands of keys, whose text is never
    kept (over 4 KiB): a save of 10,000 keys took 28 ms, 13 ms now."""
    store = MemoryStore()
    many = {f"key{number}": number for number in range(10_000)}
    joined = counted(monkeypatch, envelope, "data_text")
    key = saved_session(store, **many)
    session = Session(store, session_key=key)
    session["key0"] = "changed"
    session.save()
    assert joined == []
    assert dict(Session(store, session_key=key)) == {**many, "key0": "changed"}
    saved_session(store, few=1)
    assert joined == [{"few": 1}]
