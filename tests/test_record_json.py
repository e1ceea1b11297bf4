"""The record text joined from kept pieces is byte for byte the encoder's."""

from __future__ import annotations

import datetime
import math
from typing import Any

from helpers import kept_session
from hypothesis import given
from hypothesis import strategies as st

from wsgisession import Session, envelope
from wsgisession import _recordtext as _recordjson
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore

SERIALIZER = TaggedJSONSerializer()
KEY = "k" * 43

plain_values = st.one_of(
    st.text(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN, the infinities and -0.0 included
    st.booleans(),
    st.none(),
)
finite_plain_values = st.one_of(
    st.text(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
any_values = st.one_of(
    plain_values,
    st.lists(plain_values, max_size=3),
    st.dates(),
    st.binary(max_size=8),
)
keys = st.one_of(st.text(max_size=8), st.just(" dt"), st.just(" dict"))


def record_of(
    data: dict[Any, Any], created: float, saved: float | None
) -> dict[str, Any]:
    record = {"v": 1, "data": data, "created": created, "expiry": None}
    if saved is not None:
        record["saved"] = saved
    return record


def joined_text(record: dict[str, Any], saved_text: str | None = None) -> str | None:
    """The record joined from pieces, as the envelope joins it."""
    text = _recordjson.data_text(record["data"])
    if text is None:
        return None
    return _recordjson.record_text(
        text, record["created"], record["expiry"], record.get("saved"), None, saved_text
    )


def is_plain(record: dict[str, Any]) -> bool:
    """Whether record_text() must join it: no tag, no NaN or infinity anywhere."""
    data = record["data"]
    if len(data) == 1 and next(iter(data)).startswith(" "):
        return False
    values = [*data.values(), *(v for k, v in record.items() if k != "data")]
    return all(
        type(v) in (str, int, bool, type(None))
        or (type(v) is float and math.isfinite(v))
        for v in values
    )


@given(
    data=st.dictionaries(keys, any_values, max_size=6),
    created=st.floats(allow_nan=False, allow_infinity=False),
    saved=st.none() | st.floats(),
)
def test_the_joined_record_is_the_encoders(
    data: dict[str, Any], created: float, saved: float | None
) -> None:
    record = record_of(data, created, saved)
    general = SERIALIZER.dumps(record).decode("utf-8")
    for _ in range(2):  # the second time from kept pieces
        joined = joined_text(record)
        assert (joined is not None) == is_plain(record)
        assert joined is None or joined == general


@given(
    now=st.floats(min_value=0.0, max_value=2.0**33, exclude_max=True)
    | st.sampled_from([1.0, 1.000001, 4294967295.999999, 1795889279.5082304]),
    data=st.dictionaries(
        st.text(max_size=4).filter(lambda key: not key.startswith(" ")),
        st.text(max_size=4),
        max_size=2,
    ),
)
def test_a_save_moment_is_written_as_the_encoder_writes_it(
    now: float, data: dict[str, str]
) -> None:
    moment, moment_text = _recordjson.save_moment(now)
    assert abs(moment - now) < 1e-6 * max(1.0, abs(now))  # to the microsecond
    assert moment_text is None or moment_text == repr(moment)
    later, later_text = _recordjson.save_moment(moment + 5.0)
    # a new session (created as it is saved), then a later save of it
    for record, text in (
        (record_of(data, moment, moment), moment_text),
        (record_of(data, moment, later), later_text),
    ):
        assert joined_text(record, text) == SERIALIZER.dumps(record).decode("utf-8")


def test_zero_times_are_the_encoders() -> None:
    for moment in (0.0, -0.0):
        record = record_of({"a": 1}, moment, moment)
        assert joined_text(record) == SERIALIZER.dumps(record).decode("utf-8")
        assert _recordjson.save_moment(moment) == (moment, None)


def test_save_moments_are_microseconds_below_2_to_the_32() -> None:
    assert _recordjson.save_moment(1795889279.5082304) == (
        1795889279.50823,
        "1795889279.50823",
    )
    moment, text = _recordjson.save_moment(1795889279.0000004)
    assert (repr(moment), text) == ("1795889279.0", "1795889279.0")
    assert _recordjson.save_moment(2.0**32 + 0.1234567) == (2.0**32 + 0.1234567, None)
    assert _recordjson.save_moment(0.5) == (0.5, None)  # left as it is


def test_plain_records_are_joined_and_others_are_left_to_the_encoder() -> None:
    plain = record_of({"name": 'Zoë \u2028 "q"', "n": 10**20, "f": -0.0}, 1.5, 2.0)
    assert joined_text(plain) is not None
    for data in (
        {"when": datetime.date(2026, 1, 1)},  # needs a tag
        {" dt": "looks like a tag"},  # the tag scheme wraps it
        {1: "an int key"},
        {"x": math.nan},
    ):
        record = record_of(data, 1.5, None)
        assert joined_text(record) is None
        parts = envelope.Envelope(data, 1.5, None)
        assert envelope.encode(SERIALIZER, parts) == SERIALIZER.dumps(record)


def test_long_strings_are_not_kept() -> None:
    long_value = "x" * (_recordjson.MAX_KEPT_LENGTH + 1)
    assert joined_text(record_of({"big": long_value}, 1.0, None))
    assert long_value not in _recordjson._strings
    assert "big" in _recordjson._strings


@given(
    data=st.dictionaries(
        st.text(max_size=8).filter(lambda key: not key.startswith(" ")),
        finite_plain_values,
        min_size=1,
        max_size=6,
    ),
    new_values=st.lists(any_values, min_size=1, max_size=3),
    saved=st.floats(allow_nan=False, allow_infinity=False),
)
def test_a_record_saved_again_is_the_encoders(
    data: dict[str, Any], new_values: list[Any], saved: float
) -> None:
    """Rewriting the changed items of the last save gives the encoder's text."""
    first = envelope.Envelope(data, 1.5, None, 2.5)
    payload, text = envelope.encode_text(SERIALIZER, first)
    assert text is not None
    envelope.forget(KEY)
    envelope.remember(SERIALIZER, KEY, payload, first, text=text)
    changed_data = dict(data)
    keys = list(data)
    for index, value in enumerate(new_values):
        changed_data[keys[index % len(keys)]] = value
    changed = {keys[index % len(keys)] for index in range(len(new_values))}
    again = envelope.Envelope(changed_data, 1.5, None, saved)
    record = record_of(changed_data, 1.5, saved)
    try:
        general = SERIALIZER.dumps(record)
    except ValueError:  # NaN inside a list, and such: the encoder's to refuse
        return
    spliced, _ = envelope.encode_text(SERIALIZER, again, payload, changed, KEY)
    assert spliced == general
    moment, moment_text = _recordjson.save_moment(abs(saved))
    if moment_text is not None:  # a save's own time: joined in one pass
        resaved = envelope.Envelope(changed_data, 1.5, None, moment)
        joined, _ = envelope.encode_text(
            SERIALIZER, resaved, payload, changed, KEY, moment_text
        )
        assert joined == SERIALIZER.dumps(record_of(changed_data, 1.5, moment))
    rewritten = _recordjson.changed_data_text(text, changed_data, changed)
    assert (rewritten is None) == (not is_plain(record))


def test_a_key_deleted_and_set_again_moves_to_the_end_as_the_encoder_has_it() -> None:
    first = envelope.Envelope({"a": 1, "b": 2}, 1.5, None, 2.5)
    payload, text = envelope.encode_text(SERIALIZER, first)
    assert text is not None
    envelope.remember(SERIALIZER, KEY, payload, first, text=text)
    moved = {"b": 2, "a": 3}
    # The change set says a key was deleted: changed None, every item written.
    again, _ = envelope.encode_text(
        SERIALIZER, envelope.Envelope(moved, 1.5, None, 3.5), payload, None, KEY
    )
    assert again == SERIALIZER.dumps(record_of(moved, 1.5, 3.5))
    assert again.index(b'"b"') < again.index(b'"a"')


def test_a_session_key_deleted_and_set_again_is_saved_in_the_data_s_order() -> None:
    store = MemoryStore()
    session = Session(store)
    session.update(a=1, b=2)
    session.save()
    session["a"] = 0
    session.save()  # kept: the next save starts from its text
    key = session.session_key
    again = Session(store, session_key=key)
    del again["a"]
    again["a"] = 3
    again.save()
    payload = store.load(key).payload
    assert payload.index(b'"b"') < payload.index(b'"a"')
    assert list(Session(store, session_key=key)) == ["b", "a"]


def test_a_key_added_to_a_kept_record_is_saved() -> None:
    store = MemoryStore()
    key = kept_session(store)
    again = Session(store, session_key=key)
    again["a"] = 3
    again["b"] = 4
    again.save()
    assert dict(Session(store, session_key=key)) == {"a": 3, "b": 4}


def test_the_string_cache_stays_small_whatever_strings_a_client_sends() -> None:
    """An app that stores a client's input (a search box) sees strings of
    the client's choosing: wide characters that escape six times longer."""
    length = _recordjson.MAX_KEPT_LENGTH
    wide = "\x01\U0001f600" * (length // 2)
    for number in range(4000):
        value = f"{number:04d}{wide}"[:length]
        assert _recordjson.data_text({"q": value}) is not None
        total = sum(len(k) + len(v) for k, v in _recordjson._strings.items())
        assert total <= _recordjson._MAX_KEPT_CHARACTERS
    assert _recordjson._kept_characters == sum(
        len(k) + len(v) for k, v in _recordjson._strings.items()
    )
