"""The record text joined from kept pieces is byte for byte the encoder's."""

from __future__ import annotations

import datetime
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wsgisession import envelope
from wsgisession import serializers as _recordjson
from wsgisession.serializers import TaggedJSONSerializer

SERIALIZER = TaggedJSONSerializer()

plain_values = st.one_of(
    st.text(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN, the infinities and -0.0 included
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
        joined = _recordjson.record_text(record)
        assert (joined is not None) == is_plain(record)
        assert joined is None or joined == general


def test_plain_records_are_joined_and_others_are_left_to_the_encoder() -> None:
    plain = record_of({"name": 'Zoë \u2028 "q"', "n": 10**20, "f": -0.0}, 1.5, 2.0)
    assert _recordjson.record_text(plain) is not None
    for data in (
        {"when": datetime.date(2026, 1, 1)},  # needs a tag
        {" dt": "looks like a tag"},  # the tag scheme wraps it
        {1: "an int key"},
        {"x": math.nan},
    ):
        record = record_of(data, 1.5, None)
        assert _recordjson.record_text(record) is None
        parts = envelope.Envelope(data, 1.5, None)
        assert envelope.encode(SERIALIZER, parts) == SERIALIZER.dumps(record)


def test_long_strings_are_not_kept() -> None:
    long_value = "x" * (_recordjson.MAX_KEPT_LENGTH + 1)
    assert _recordjson.record_text(record_of({"big": long_value}, 1.0, None))
    assert long_value not in _recordjson._strings
    assert "big" in _recordjson._strings
