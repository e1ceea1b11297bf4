"""The record layer's caches and fast paths, each against what it stands for.

The performance rounds (issue 13) put kept texts and spelled-out paths
beside general ones: a record's data text and tail (``envelope.encode_again``,
``encode_new``), the one-pair reads of a ``Cookie`` header (``keys_parser``),
and the save moment's text (``clock.save_moment``). Each is compared here
with its general counterpart or a plain model, over generated inputs (the
memory store's expiry heap and the cookie's kept tail:
``test_record_fast_paths_stores.py``).
"""

from __future__ import annotations

import datetime
import json
import math
import string
from fractions import Fraction
from typing import Any

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgisession import Session, clock, envelope
from wsgisession.cookie_header import cookie_values
from wsgisession.envelope import KEPT_DECODINGS, Envelope
from wsgisession.expiry import encode_expiry, utcnow
from wsgisession.keys import is_valid_key
from wsgisession.offered_keys import MAX_KEY_CANDIDATES, keys_parser
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore

JSON = TaggedJSONSerializer()
KEY = "r" * 43
EXAMPLES = settings(deadline=None, database=None, max_examples=examples(200))
MANY_EXAMPLES = settings(deadline=None, database=None, max_examples=examples(500))

# -- envelope: encode_new, encode_again and the kept decodings -------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
_plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    _text,
)
_tagged = st.one_of(
    st.datetimes(timezones=st.sampled_from([None, datetime.UTC])),
    st.dates(),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.binary(max_size=6),
    st.tuples(st.integers(), _text),
    st.frozensets(st.integers(), max_size=3).map(set),
    st.lists(_plain, max_size=3),
    st.dictionaries(_text, _plain, max_size=2),
)
_keys = st.one_of(st.sampled_from(["a", "b", "c", "n", "\u00e9", " t"]), _text)
_values = st.one_of(_plain, _tagged)
# Mostly plain values: only a record of plain values keeps its text.
_data = st.one_of(
    st.dictionaries(_keys, _plain, max_size=4),
    st.dictionaries(_keys, _values, max_size=4),
)
_changes = st.one_of(
    st.dictionaries(_keys, _plain, max_size=3),
    st.dictionaries(_keys, _values, max_size=2),
)
_expiries = st.one_of(
    st.none(),
    st.integers(0, 10**7),
    st.integers(-86400, 10**7).map(
        lambda seconds: encode_expiry(utcnow() + datetime.timedelta(seconds=seconds))
    ),
)
_users = st.one_of(st.none(), st.text(min_size=1, max_size=5))
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _changes),
        st.tuples(st.just("set"), _changes),
        st.tuples(st.just("delete"), _keys),
        st.tuples(st.just("expiry"), _expiries),
        st.tuples(st.just("user"), _users),
        st.tuples(st.just("reload"), st.booleans()),
    ),
    max_size=10,
)
_moments = st.floats(1.0, 4e9)


def general_bytes(parts: Envelope) -> bytes:
    """The record's bytes as the serializer writes it, no kept text involved."""
    data, created, expiry, saved_at, user = parts
    record = {"v": 1, "data": data, "created": created, "expiry": expiry}
    record["saved"] = saved_at
    if user is not None:
        record["user"] = user
    return JSON.dumps(record)


def decodes_to(payload: bytes, parts: Envelope) -> None:
    """``payload`` decodes to ``parts`` fresh, and through the kept decodings."""
    assert envelope.decode(JSON, payload) == parts
    assert envelope.decode(JSON, payload, KEY) == parts
    kept = KEPT_DECODINGS.get(KEY)
    assert kept is None or kept[0] != payload or kept[1] == parts


def save_again(
    previous: bytes, parts: Envelope, changed: set[str] | None, text: str | None
) -> bytes:
    """What ``SessionRecord.update`` writes: joined again from the kept text,
    else encoded in full (from the kept data text if it may) and remembered."""
    data, created, expiry, moment, user = parts
    if changed is not None:
        again = envelope.encode_again(
            JSON, KEY, previous, data, changed, created, expiry, moment, text, user
        )
        if again is not None:
            assert again[1] == parts
            return again[0]
    payload, data_text = envelope.encode_text(JSON, parts, previous, changed, KEY, text)
    envelope.remember(JSON, KEY, payload, parts, data_text)
    return payload


@pytest.mark.slow
@MANY_EXAMPLES
@given(_data, _expiries, _users, st.booleans(), _moments, _steps)
def test_saved_records_are_the_general_encoders_bytes(
    data: dict[str, Any],
    expiry: Any,
    user: str | None,
    created_earlier: bool,
    start: float,
    steps: list[tuple[str, Any]],
) -> None:
    envelope.forget(KEY)
    moment, text = clock.save_moment(start)
    created = moment - 7.25 if created_earlier else moment
    payload = envelope.encode_new(JSON, data, created, expiry, moment, user, text)
    parts = Envelope(dict(data), created, expiry, moment, user)
    assert payload == general_bytes(parts)
    decodes_to(payload, parts)  # a load: kept from now on, if it may be
    changed: set[str] | None = set()
    for number, (kind, change) in enumerate(steps):
        if kind == "set":
            data.update(change)
            changed = None if changed is None else changed | set(change)
        elif kind == "delete" and change in data:
            del data[change]
            changed = None
        elif kind == "expiry":
            expiry = change
        elif kind == "user":
            user = change
        decodes_to(payload, parts)  # what is kept is not the request's to change
        moment, text = clock.save_moment(start + 1.5 * (number + 1))
        saved = Envelope(data, created, expiry, moment, user)  # the live dict
        payload = save_again(payload, saved, changed, text)
        parts = Envelope(dict(data), created, expiry, moment, user)
        assert payload == general_bytes(parts)
        decodes_to(payload, parts)
        if kind == "reload":  # the next request: its parts are the kept ones
            data, created, expiry, _, user = envelope.decode(JSON, payload, KEY)
        changed = set()


@EXAMPLES
@given(_data, _data, _moments, st.sampled_from(["clear", "bound", "kept"]))
def test_a_kept_decoding_is_never_served_for_other_bytes(
    first: dict[str, Any], second: dict[str, Any], moment: float, cache: str
) -> None:
    """A request that loaded ``first`` saves it after another saved ``second``:
    neither's kept decoding or text is taken for the other's bytes."""
    loaded = Envelope(first, moment, None, moment + 1.0, None)
    other = Envelope(second, moment, 60, moment + 2.0, "u")
    loaded_payload, other_payload = general_bytes(loaded), general_bytes(other)
    envelope.forget(KEY)
    assert envelope.decode(JSON, loaded_payload, KEY) == loaded
    if cache == "clear":
        KEPT_DECODINGS.clear()
    elif cache == "bound":
        for number in range(envelope._KEPT_RECORDS):
            envelope.remember(JSON, f"filler{number}", b"{}", loaded)
    assert envelope.decode(JSON, other_payload, KEY) == other
    other_payload = save_again(other_payload, other, None, None)  # its text kept
    data = {**first, "n": 1}
    saved_at, text = clock.save_moment(moment + 3.0)
    again = envelope.encode_again(
        JSON, KEY, loaded_payload, data, {"n"}, moment, None, saved_at, text, None
    )
    assert again is None or again[0] == general_bytes(
        Envelope(data, moment, None, saved_at, None)
    )
    assert envelope.decode(JSON, other_payload, KEY) == other


@pytest.mark.parametrize(
    ("start", "added"),
    [({"a": 1}, {"d": 4, "c": 3, "b": 2}), ({}, {" t": 1}), ({}, {" t": 1, "u": 2})],
)
def test_keys_added_at_a_save_are_joined_in_the_datas_order(
    start: dict[str, Any], added: dict[str, Any]
) -> None:
    """``changed`` is a set, in its hashes' order: reversed here, for sure; a
    lone key the tag scheme wraps is the general encoder's to write."""
    envelope.forget(KEY)
    moment, text = clock.save_moment(1_700_000_000.25)
    parts = Envelope(start, moment, None, moment, None)
    payload = save_again(general_bytes(parts), parts, None, text)  # text kept
    data = {**start, **dict(reversed(added.items()))}
    later, later_text = clock.save_moment(1_700_000_001.5)
    again = envelope.encode_again(
        JSON, KEY, payload, data, list(added), moment, None, later, later_text, None
    )
    expected = general_bytes(Envelope(data, moment, None, later, None))
    assert again is None or again[0] == expected
    assert again is not None or list(data) == [" t"]


def test_a_record_replaced_in_the_store_is_not_read_from_the_kept_decoding() -> None:
    store = MemoryStore()
    session = Session(store)
    session["who"] = "alice"
    session.save()
    key = session.session_key
    assert key is not None and Session(store, session_key=key)["who"] == "alice"
    assert KEPT_DECODINGS[key][1].data == {"who": "alice"}
    replaced = envelope.encode(JSON, Envelope({"who": "bob"}, 5.0, None, 6.0))
    store.update(key, lambda current: (replaced, clock.now() + 60), None)
    assert Session(store, session_key=key)["who"] == "bob"


# -- keys_parser's fast paths against cookie_values ------------------------------

_ID_CHARACTERS = string.ascii_letters + string.digits + "_-"
_ids = st.text(_ID_CHARACTERS, min_size=43, max_size=43)
_near_ids = st.one_of(
    st.text(_ID_CHARACTERS, min_size=42, max_size=42),
    st.text(_ID_CHARACTERS, min_size=44, max_size=44),
    st.tuples(_ids, st.sampled_from('+/=. \t,"é\xff'), st.integers(0, 42)).map(
        lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] + 1 :]
    ),
)
_latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=8)
_cookie_values = st.one_of(
    _ids, _ids, _near_ids, st.just(""), _latin1, _ids.map(lambda i: f'"{i}"')
)
_names = st.one_of(
    st.sampled_from(["sessionid", "sid", "s.id", "a+b", "__Host-s"]),
    st.text(string.ascii_letters + "!#$%&'*+-.^_`|~", min_size=1, max_size=6),
)


@st.composite
def _headers(draw: Any) -> tuple[str, str]:
    """A cookie name and a header: its one pair (the fast paths' case, with
    any value), or pairs of it and others, with odd separators and tails."""
    name = draw(_names)
    if draw(st.booleans()):
        return name, f"{name}={draw(_cookie_values)}"
    pair_names = st.sampled_from([name, name, "other", name + "x", "x" + name])
    pairs = draw(st.lists(st.tuples(pair_names, _cookie_values), max_size=7))
    separators = st.sampled_from(["; ", ";", " ; ", ";  ", ", ", "\t"])
    header = "".join(f"{draw(separators)}{n}={v}" for n, v in pairs)
    header = header.lstrip(";, \t") if draw(st.booleans()) else header
    return name, draw(st.one_of(st.just(header), _latin1.map(lambda t: header + t)))


class _Session:
    _had_cookie = False
    _untried = False


def parsed(parser: Any, header: str) -> tuple[tuple[str, ...], bool, bool]:
    session = _Session()
    keys = parser(session, header)
    return keys, session._had_cookie, session._untried


def reference_keys(
    header: str, name: str, is_valid: Any = is_valid_key
) -> tuple[tuple[str, ...], bool, bool]:
    """The keys, had-cookie and untried flags, from ``cookie_values`` alone."""
    values = cookie_values(header, name)
    keys: list[str] = []
    for value in values:
        if value not in keys and is_valid(value):
            if len(keys) == MAX_KEY_CANDIDATES:
                return tuple(keys), True, True
            keys.append(value)
    return tuple(keys), bool(values), False


def short_values(value: object) -> bool:
    """A store's own key check, looser than the default's."""
    return isinstance(value, str) and 0 < len(value) < 50


@pytest.mark.slow
@MANY_EXAMPLES
@given(_headers())
def test_the_keys_parsers_fast_paths_read_what_the_general_path_reads(
    named_header: tuple[str, str],
) -> None:
    name, header = named_header
    fast = parsed(keys_parser(name, is_valid_key), header)
    assert fast == parsed(keys_parser(name, lambda key: is_valid_key(key)), header)
    assert fast == reference_keys(header, name)
    own = parsed(keys_parser(name, short_values), header)
    assert own == reference_keys(header, name, short_values)


@pytest.mark.parametrize(
    "header",
    [
        "sessionid=" + "A" * 43,
        "sessionid=" + "A" * 42,
        "sessionid=" + "A" * 44,
        "sessionid=",
        "sessionid=a=b,c=" + "A" * 43,
        "sessionid=" + "A" * 43 + ";x=1",
        "sessionid=a b",
        'sessionid="' + "A" * 43 + '"',
        "sessionid=" + "A" * 43 + "\xe9",
        "sessionid=\xc3\xa9",
        "sessionid=\t" + "A" * 43,
        "sessionid =" + "A" * 43,
        "xsessionid=" + "A" * 43,
        "; ".join(f"sessionid={c * 43}" for c in "ABCDEF"),
    ],
)
def test_the_keys_parser_on_headers_at_the_fast_paths_edges(header: str) -> None:
    for check in (is_valid_key, short_values):
        fast = parsed(keys_parser("sessionid", check), header)
        assert fast == reference_keys(header, "sessionid", check)


# -- clock.save_moment -------------------------------------------------------------


def assert_save_moment(now: float) -> None:
    moment, text = clock.save_moment(now)
    if not 1.0 <= now < 2.0**32:  # NaN included: left as it is, no text
        assert text is None and moment is now
        return
    assert text is not None
    assert json.loads(text) == moment and text == json.dumps(moment)
    assert float(text) == moment and len(text.partition(".")[2]) <= 6
    # the nearest microsecond (a tie may go either way)
    assert abs(Fraction(moment) - Fraction(now)) <= Fraction(1, 2_000_000) + Fraction(
        math.ulp(now)
    )


@pytest.mark.slow
@EXAMPLES
@given(
    st.one_of(
        st.floats(1.0, 2.0**32, exclude_max=True),
        st.floats(),
        st.integers(1, 2**32 - 1).map(float),
        st.tuples(st.integers(1, 2**32 - 1), st.integers(0, 999_999)).map(
            lambda parts: parts[0] + parts[1] / 1_000_000
        ),
        st.floats(2.0**32 - 2.0, 2.0**32, exclude_max=True),
        st.floats(2.0**32, 2.0**40),
    )
)
def test_a_save_moment_is_the_nearest_microsecond_and_its_json(now: float) -> None:
    assert_save_moment(now)


@pytest.mark.parametrize(
    "now",
    [1.0, 1.000001, 1.0000005, 1700000000.000001, 2.0**32 - 1e-6, 4294967295.9999995]
    + [0.9999999, 2.0**32, -1.0, math.inf, -math.inf, math.nan, 0.0],
)
def test_save_moments_at_their_edges(now: float) -> None:
    assert_save_moment(now)


def test_a_time_of_whole_microseconds_is_its_own_save_moment() -> None:
    """1.000001 * 1e6 is 1000000.9999999999: truncated, it lost a microsecond."""
    assert clock.save_moment(1.000001) == (1.000001, "1.000001")
    assert clock.save_moment(1700000000.000001)[1] == "1700000000.000001"
