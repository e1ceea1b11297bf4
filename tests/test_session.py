"""The session object's Django semantics, on the memory store."""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers import FakeClock, saved_session

from wsgisession import Session
from wsgisession.config import Settings
from wsgisession.errors import SessionError, SessionInterrupted, UnserializableValue
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores import MemoryStore

UTC = datetime.UTC


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_construction_loads_nothing(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    session = Session(store, session_key=key)
    assert session._data is None
    assert not session.accessed and not session.modified
    assert session.session_key == key


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.get("a"),
        lambda s: "a" in s,
        lambda s: list(s.keys()),
        lambda s: len(s),
        lambda s: s.get("missing"),
        lambda s: list(s.items()),
    ],
)
def test_reads_set_accessed_but_not_modified(store: MemoryStore, operation) -> None:
    session = Session(store, session_key=saved_session(store, a=1))
    operation(session)
    assert session.accessed
    assert not session.modified


def test_getitem_missing_raises_keyerror(store: MemoryStore) -> None:
    session = Session(store)
    with pytest.raises(KeyError):
        session["missing"]
    assert session.accessed and not session.modified


def test_setitem_and_delitem_flags(store: MemoryStore) -> None:
    session = Session(store, session_key=saved_session(store, a=1))
    with pytest.raises(KeyError):
        del session["missing"]
    assert not session.modified
    del session["a"]
    assert session.modified
    assert "a" not in session


def test_pop_semantics(store: MemoryStore) -> None:
    session = Session(store, session_key=saved_session(store, a=1))
    assert session.pop("missing", None) is None
    assert session.pop("missing", "x") == "x"
    assert not session.modified
    with pytest.raises(KeyError):
        session.pop("missing")
    assert session.pop("a") == 1
    assert session.modified


def test_setdefault_modifies_only_when_storing(store: MemoryStore) -> None:
    session = Session(store, session_key=saved_session(store, a=1))
    assert session.setdefault("a", 2) == 1
    assert not session.modified
    assert session.setdefault("b", 2) == 2
    assert session.modified


def test_update_with_empty_dict_marks_modified(store: MemoryStore) -> None:
    session = Session(store)
    session.update({})
    assert session.modified


def test_clear_keeps_key_flush_drops_it(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    session = Session(store, session_key=key)
    session.clear()
    assert not session.is_empty()
    assert session.session_key == key
    assert len(session) == 0
    session.flush()
    assert session.is_empty()
    assert session.session_key is None
    assert not store.exists(key)


def test_is_empty_and_bool(store: MemoryStore) -> None:
    assert Session(store).is_empty()
    assert not Session(store)
    keyed = Session(store, session_key=saved_session(store, a=1))
    assert not keyed.is_empty()
    assert keyed
    assert keyed.accessed, "is_empty() loads the session: the key must be known"
    made_up = Session(store, session_key=generate_key())
    assert not made_up, "a made-up id is not a session"
    assert made_up.is_empty()


def test_unknown_key_loads_empty_and_drops_key(store: MemoryStore) -> None:
    session = Session(store, session_key=generate_key())
    assert session.get("a") is None
    assert session.session_key is None
    assert session.is_empty()


@pytest.mark.parametrize(
    "bad", ["", "short", "x" * 43 + "y", "../" * 15, "a\x00" * 20, None]
)
def test_malformed_keys_never_reach_the_store(store: MemoryStore, bad) -> None:
    session = Session(store, session_key=bad)
    assert session.session_key is None
    assert not store.exists(bad)  # type: ignore[arg-type]


def test_unknown_well_formed_key_is_never_adopted(store: MemoryStore) -> None:
    forged = generate_key()
    session = Session(store, session_key=forged)
    session["a"] = 1
    session.save()
    assert session.session_key not in (None, forged)
    assert not store.exists(forged)


def test_save_round_trip_and_new_key_shape(store: MemoryStore) -> None:
    session = Session(store)
    session["a"] = [1, 2]
    session.save()
    key = session.session_key
    assert key is not None and len(key) == 43
    assert Session(store, session_key=key)["a"] == [1, 2]


def test_store_holds_hashed_ids_only(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    assert key not in store._records
    assert storage_key(key) in store._records


def test_memory_store_keeps_serialized_copies(store: MemoryStore) -> None:
    session = Session(store)
    value = [1]
    session["a"] = value
    session.save()
    value.append(2)
    assert Session(store, session_key=session.session_key)["a"] == [1]


def test_cycle_key_keeps_data_and_deletes_old_record_at_once(
    store: MemoryStore,
) -> None:
    old = saved_session(store, a=1, b=2)
    session = Session(store, session_key=old)
    session.cycle_key()
    assert session.session_key not in (None, old)
    assert not store.exists(old)
    assert store.exists(session.session_key)  # type: ignore[arg-type]
    assert dict(Session(store, session_key=session.session_key)) == {"a": 1, "b": 2}
    assert session.modified


def test_cycle_key_on_new_session_creates_one(store: MemoryStore) -> None:
    session = Session(store)
    session.cycle_key()
    assert session.session_key is not None
    assert store.exists(session.session_key)


def test_flush_on_unloaded_session_deletes_record(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    session = Session(store, session_key=key)
    session.flush()
    assert not store.exists(key)
    assert session.modified and session.accessed


def test_save_after_concurrent_delete_raises_interrupted(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    session = Session(store, session_key=key)
    session["b"] = 2
    Session(store, session_key=key).flush()  # a logout in another tab
    with pytest.raises(SessionInterrupted):
        session.save()
    assert not store.exists(key), "the deleted session must not be brought back"


def test_changes_on_different_keys_merge(store: MemoryStore) -> None:
    key = saved_session(store, a=0, b=0)
    first, second = Session(store, session_key=key), Session(store, session_key=key)
    first["a"] = 1
    second["b"] = 2
    first.save()
    second.save()
    assert dict(Session(store, session_key=key)) == {"a": 1, "b": 2}


def test_delete_and_clear_merge(store: MemoryStore) -> None:
    key = saved_session(store, a=0, b=0, c=0)
    first, second = Session(store, session_key=key), Session(store, session_key=key)
    del first["a"]
    second["d"] = 4
    first.save()
    second.save()
    assert dict(Session(store, session_key=key)) == {"b": 0, "c": 0, "d": 4}
    third, fourth = Session(store, session_key=key), Session(store, session_key=key)
    third.clear()
    fourth["e"] = 5
    fourth.save()
    third.save()
    assert dict(Session(store, session_key=key)) == {}


def test_in_place_change_is_detected_and_merged(store: MemoryStore) -> None:
    key = saved_session(store, cart=[1], other=0)
    first, second = Session(store, session_key=key), Session(store, session_key=key)
    first["cart"].append(2)
    second["other"] = 1
    second.save()
    assert first.detect_changes()
    assert first.modified
    first.save()
    assert dict(Session(store, session_key=key)) == {"cart": [1, 2], "other": 1}


@pytest.mark.parametrize("other_expiry", [60, 30 * 86400, 0])
def test_a_merged_save_keeps_the_expiry_another_request_set(
    store: MemoryStore, frozen_clock: FakeClock, other_expiry: int
) -> None:
    key = saved_session(store, a=0)
    first, second = Session(store, session_key=key), Session(store, session_key=key)
    first.load()
    second.set_expiry(other_expiry)  # "remember me", or a short idle timeout
    second.save()
    first["b"] = 1  # another key: merged into the record as it is now
    first.save()
    expected = other_expiry or Settings().cookie_age  # 0: browser close
    record = store.load(key)
    assert record is not None
    assert record.expires_at == pytest.approx(frozen_clock() + expected)
    assert first.get_expiry_age() == expected
    assert first.cookie_max_age(as_saved=True) == (other_expiry or None)
    assert dict(Session(store, session_key=key)) == {"a": 0, "b": 1}


def test_a_merged_save_with_its_own_expiry_keeps_it(
    store: MemoryStore, frozen_clock: FakeClock
) -> None:
    key = saved_session(store, a=0)
    first, second = Session(store, session_key=key), Session(store, session_key=key)
    first.set_expiry(120)
    second.set_expiry(60)
    second.save()
    first["b"] = 1
    first.save()
    record = store.load(key)
    assert record is not None
    assert record.expires_at == pytest.approx(frozen_clock() + 120)
    assert first.get_expiry_age() == 120


def held_across_a_merge(
    store: MemoryStore, other_change: Callable[[Session], None]
) -> tuple[str, Session, list[int]]:
    """A request that holds its session's ``cart`` ([1]) while another request
    makes ``other_change`` and saves; then it sets ``y`` and saves (a merge).
    The key, the first request's session, and the list it holds."""
    key = saved_session(store, cart=[1])
    first = Session(store, session_key=key)
    held = first["cart"]
    other = Session(store, session_key=key)
    other_change(other)
    other.save()
    first["y"] = 2
    first.save()  # merged with the other request's change
    return key, first, held


def test_a_value_held_across_a_merged_save_stays_the_sessions(
    store: MemoryStore,
) -> None:
    key, first, cart = held_across_a_merge(store, lambda other: other.update(x=1))
    cart.append(2)  # the request goes on changing the list it holds
    first.save()
    assert first["cart"] is cart
    assert dict(Session(store, session_key=key)) == {"cart": [1, 2], "x": 1, "y": 2}


def test_a_value_changed_by_another_request_is_not_replaced_by_a_stale_copy(
    store: MemoryStore,
) -> None:
    key, first, stale = held_across_a_merge(
        store, lambda other: other["cart"].append(9)
    )
    assert first["cart"] == [1, 9] and first["cart"] is not stale
    assert dict(Session(store, session_key=key)) == {"cart": [1, 9], "y": 2}


def test_read_only_request_never_writes_stale_data(store: MemoryStore) -> None:
    key = saved_session(store, a=0)
    reader = Session(store, session_key=key)
    reader.get("a")
    writer = Session(store, session_key=key)
    writer["a"] = 1
    writer.save()
    assert not reader.detect_changes()
    reader.modified = True  # Django's idiom; the save still only applies changes
    reader.save()
    assert Session(store, session_key=key)["a"] == 1


def test_tagged_json_round_trips_common_types(store: MemoryStore) -> None:
    values = {
        "dt": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "naive": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "date": datetime.date(2026, 1, 2),
        "time": datetime.time(3, 4, 5),
        "td": datetime.timedelta(days=1, seconds=2, microseconds=3),
        "uuid": uuid.uuid4(),
        "dec": decimal.Decimal("1.10"),
        "bytes": b"\x00\xff",
        "tuple": (1, "a", (2,)),
        "set": {1, 2},
        "lookalike": {" dt": "not a date"},
        "nested": {"list": [{" t": 1}, (1, 2)]},
    }
    key = saved_session(store, **values)
    assert dict(Session(store, session_key=key)) == values


def test_unserializable_value_names_key_and_keeps_store_intact(
    store: MemoryStore,
) -> None:
    key = saved_session(store, a=1)
    session = Session(store, session_key=key)
    session["bad"] = object()
    session["a"] = 2
    with pytest.raises(UnserializableValue, match="'bad'") as caught:
        session.save()
    assert isinstance(caught.value, TypeError)
    assert dict(Session(store, session_key=key)) == {"a": 1}


def test_metadata_stays_out_of_user_keys(store: MemoryStore) -> None:
    session = Session(store)
    session["a"] = 1
    session.set_expiry(300)
    session.save()
    loaded = Session(store, session_key=session.session_key)
    assert list(loaded.keys()) == ["a"]
    assert loaded.get_expiry_age() == 300


def test_custom_serializer_sees_json_native_values(store: MemoryStore) -> None:
    import json

    seen: list[object] = []

    class PlainJSON:
        def dumps(self, obj: object) -> bytes:
            seen.append(obj)
            return json.dumps(obj).encode()

        def loads(self, data: bytes) -> object:
            return json.loads(data)

    session = Session(store, Settings(serializer=PlainJSON()))
    session["a"] = {"b": [1, "x", None, True, 1.5]}
    session.set_expiry(datetime.datetime(2030, 1, 1, tzinfo=UTC))
    session.save()
    assert seen, "the custom serializer was not used"
    loaded = Session(store, Settings(serializer=PlainJSON()), session.session_key)
    assert loaded["a"] == {"b": [1, "x", None, True, 1.5]}


# -- expiry ------------------------------------------------------------------


def test_default_expiry(store: MemoryStore) -> None:
    session = Session(store)
    assert session.get_expiry_age() == 1209600
    assert session.get_session_cookie_age() == 1209600
    assert not session.get_expire_at_browser_close()


def test_set_expiry_int_and_zero(store: MemoryStore) -> None:
    session = Session(store)
    session.set_expiry(10)
    assert session.get_expiry_age() == 10
    assert not session.get_expire_at_browser_close()
    session.set_expiry(0)
    assert session.get_expiry_age() == 1209600
    assert session.get_expire_at_browser_close()
    session.set_expiry(None)
    assert not session.get_expire_at_browser_close()


@pytest.mark.parametrize("custom", [0, 60, datetime.timedelta(days=30)])
def test_clear_puts_the_expiry_back_to_the_default_as_in_django(
    store: MemoryStore, custom: int | datetime.timedelta
) -> None:
    session = Session(store)
    session["a"] = 1
    session.set_expiry(custom)
    session.save()
    again = Session(store, session_key=session.session_key)
    again.clear()
    assert again.get_expiry_age() == Settings().cookie_age
    assert not again.get_expire_at_browser_close()
    again["b"] = 2
    again.save()
    reloaded = Session(store, session_key=session.session_key)
    assert dict(reloaded) == {"b": 2}
    assert reloaded.get_expiry_age() == Settings().cookie_age


@pytest.mark.parametrize("other_expiry", [0, 60])
def test_clear_puts_back_the_default_expiry_another_request_set_meanwhile(
    store: MemoryStore, other_expiry: int
) -> None:
    """A clear() empties the record as it is at save time, expiry included."""
    key = saved_session(store, a=1)
    first = Session(store, session_key=key)
    first.clear()
    second = Session(store, session_key=key)
    second.set_expiry(other_expiry)  # browser close, or a short idle timeout
    second.save()
    first["b"] = 2
    first.save()
    assert first.get_expiry_age() == Settings().cookie_age
    reloaded = Session(store, session_key=key)
    assert dict(reloaded) == {"b": 2}
    assert not reloaded.get_expire_at_browser_close()
    assert reloaded.get_expiry_age() == Settings().cookie_age


def test_browser_close_setting(store: MemoryStore) -> None:
    session = Session(store, Settings(expire_at_browser_close=True))
    assert session.get_expire_at_browser_close()
    session.set_expiry(10)
    assert not session.get_expire_at_browser_close()


def test_set_expiry_datetime_and_timedelta(store: MemoryStore) -> None:
    session = Session(store)
    session.set_expiry(datetime.timedelta(seconds=100))
    assert 98 <= session.get_expiry_age() <= 100
    moment = datetime.datetime(2030, 1, 1, 12, 0)
    session.set_expiry(moment)
    assert session.get_expiry_date() == moment.replace(tzinfo=UTC)
    base = datetime.datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
    assert session.get_expiry_age(modification=base) == 3600
    aware = datetime.datetime(
        2030, 1, 1, 14, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    session.set_expiry(aware)
    assert session.get_expiry_date() == moment.replace(tzinfo=UTC)
    assert session.get_expiry_date().tzinfo is not None


def test_expiry_keyword_arguments_do_not_load(store: MemoryStore) -> None:
    session = Session(store, session_key=saved_session(store, a=1))
    base = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    assert session.get_expiry_age(modification=base, expiry=None) == 1209600
    assert session.get_expiry_age(expiry=60) == 60
    assert session.get_expiry_date(
        modification=base, expiry=60
    ) == base + datetime.timedelta(seconds=60)
    assert session._data is None


def test_set_expiry_rejects_other_types(store: MemoryStore) -> None:
    with pytest.raises(TypeError):
        Session(store).set_expiry("10")  # type: ignore[arg-type]


def test_positive_expiry_really_expires(
    store: MemoryStore, frozen_clock: FakeClock
) -> None:
    session = Session(store)
    session["a"] = 1
    session.set_expiry(1)
    session.save()
    key = session.session_key
    frozen_clock.advance(2)
    assert not store.exists(key)  # type: ignore[arg-type]
    assert Session(store, session_key=key).get("a") is None


def test_negative_expiry_is_already_expired(store: MemoryStore) -> None:
    session = Session(store)
    session["a"] = 1
    session.set_expiry(-10)
    session.save()
    assert session.get_expiry_age() == -10
    assert not store.exists(session.session_key)  # type: ignore[arg-type]


def test_absolute_timeout_caps_lifetime(
    store: MemoryStore, frozen_clock: FakeClock
) -> None:
    settings = Settings(absolute_timeout=60)
    session = Session(store, settings)
    session["a"] = 1
    session.save()
    key = session.session_key
    frozen_clock.advance(50)
    active = Session(store, settings, key)
    active["a"] = 2  # activity does not extend the absolute limit
    active.save()
    assert active.cookie_max_age() is not None and active.cookie_max_age() <= 10
    frozen_clock.advance(11)
    assert Session(store, settings, key).get("a") is None


def test_clear_expired_counts(store: MemoryStore) -> None:
    live = Session(store)
    live["a"] = 1
    live.save()
    for _ in range(3):
        dead = Session(store)
        dead["a"] = 1
        dead.set_expiry(-1)
        dead.save()
    assert store.clear_expired() == 3
    assert store.exists(live.session_key)  # type: ignore[arg-type]


# -- test cookie ---------------------------------------------------------------


def test_test_cookie_methods(store: MemoryStore) -> None:
    session = Session(store)
    assert not session.test_cookie_worked()
    session.set_test_cookie()
    assert session.test_cookie_worked()
    session.delete_test_cookie()
    assert not session.test_cookie_worked()
    with pytest.raises(KeyError):
        session.delete_test_cookie()


def test_corrupt_record_loads_empty_and_next_save_replaces_it(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    key = saved_session(store, a=1)
    name = storage_key(key)
    store._records[name] = store._records[name]._replace(payload=b"\x00garbage")
    session = Session(store, session_key=key)
    with caplog.at_level(logging.WARNING):
        assert session.get("a") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MemoryStore" in warnings[0].getMessage()
    session["b"] = 2
    session.save()
    assert dict(Session(store, session_key=session.session_key)) == {"b": 2}


def test_repr_hides_the_key(store: MemoryStore) -> None:
    key = saved_session(store, a=1)
    assert key not in repr(Session(store, session_key=key))


@pytest.mark.parametrize(
    "value",
    [
        10**400,
        -(10**400),
        float("inf"),
        float("nan"),
        datetime.timedelta.max,
        datetime.datetime.max,
        datetime.datetime(
            1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
        ),
        datetime.datetime(2999, 1, 1),
    ],
)
def test_set_expiry_refuses_values_no_store_can_hold(
    store: MemoryStore, value: object
) -> None:
    """Issue 19.4: such values made every later save() raise OverflowError."""
    session = Session(store)
    session["a"] = 1
    with pytest.raises(ValueError, match="it takes seconds as an int"):
        session.set_expiry(value)  # type: ignore[arg-type]
    session.save()
    assert Session(store, session_key=session.session_key)["a"] == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [([1], [True]), ({"price": 1}, {"price": 1.0}), ([1.5], [1.5, 0])],
)
def test_a_merged_save_keeps_another_requests_value_equal_to_the_held_one(
    store: MemoryStore, before: object, after: object
) -> None:
    """Only a value of the same serialized form is taken for the held one:
    ``==`` holds between 1 and True, or 1 and 1.0."""
    key = saved_session(store, v=before)
    first = Session(store, session_key=key)
    first["v"]  # handed out: the request may hold it
    other = Session(store, session_key=key)
    other["v"] = after
    other.save()
    first["n"] = 1
    first.save()
    assert Session(store, session_key=key)["v"] == after
    assert repr(Session(store, session_key=key)["v"]) == repr(after)


class SkipsMerge(MemoryStore):
    """A custom store whose update() breaks the protocol: it never merges."""

    def update(self, session_key: str, merge: Any, loaded: Any) -> str:
        return session_key


def test_a_store_whose_update_never_merges_is_a_named_error() -> None:
    """Not an UnboundLocalError from deep inside the save: a SessionError that
    names the store and what it failed to do."""
    store = SkipsMerge()
    session = Session(store)
    session["a"] = 1
    session.save()
    session["a"] = 2
    with pytest.raises(
        SessionError, match=r"update\(\) returned without calling merge"
    ):
        session.save()
