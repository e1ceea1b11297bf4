"""The memory store's expiry heap and the session cookie's kept tail, each
against what it stands for (the record layer's other fast paths:
``test_record_fast_paths.py``).

``MemoryStore`` pushes a heap entry only when a record's expiry moves
earlier, and sweeps from the heap; ``cookies.session_cookie`` keeps the
last header and the text after the value of the last lasting cookie.
Both are compared with a plain model: a dict under a clock of the test's
own, and werkzeug's ``dump_cookie`` of the same attributes.
"""

from __future__ import annotations

import string
import subprocess
import sys
from typing import Any

import pytest
from helpers import FakeClock, dump_cookie_header, examples
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from wsgisession import clock, cookies
from wsgisession.config import Settings
from wsgisession.keys import storage_key
from wsgisession.stores import MemoryStore

EXAMPLES = settings(deadline=None, database=None, max_examples=examples(200))
_ID_CHARACTERS = string.ascii_letters + string.digits + "_-"
_ids = st.text(_ID_CHARACTERS, min_size=43, max_size=43)


# -- MemoryStore's expiry heap against a dict ------------------------------------

_STORE_KEYS = [f"{letter}" * 43 for letter in "ABCD"]


class MemoryStoreAgainstADict(RuleBasedStateMachine):
    """Records ``key -> (payload, expires_at)`` under a clock of our own; the
    store's heap holds, for every record, an entry no later than its expiry
    (else the sweep would miss it) and at most twice the records plus 64."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.model: dict[str, tuple[bytes, float]] = {}
        self.clock = FakeClock(1_000_000.0)
        self.using = clock.use(self.clock)
        self.using.__enter__()

    def teardown(self) -> None:
        self.using.__exit__(None, None, None)

    def live(self, key: str) -> tuple[bytes, float] | None:
        entry = self.model.get(key)
        return entry if entry is not None and entry[1] > self.clock.now else None

    def expired(self) -> set[str]:
        return {key for key, (_, at) in self.model.items() if at <= self.clock.now}

    _ttls = st.sampled_from([-5.0, 0.0, 0.5, 1.0, 5.0, 50.0, 500.0])

    @rule(key=st.sampled_from(_STORE_KEYS), payload=st.binary(max_size=3), ttl=_ttls)
    def create(self, key: str, payload: bytes, ttl: float) -> None:
        expires_at = self.clock.now + ttl
        created = self.store.create(key, payload, expires_at)
        assert created == (None if self.live(key) else key)
        if created is not None:
            self.model[key] = (payload, expires_at)

    @rule(key=st.sampled_from(_STORE_KEYS), payload=st.binary(max_size=3), ttl=_ttls)
    def update(self, key: str, payload: bytes, ttl: float) -> None:
        live = self.live(key)
        merged: list[bytes | None] = []

        def merge(current: bytes | None) -> tuple[bytes, float]:
            merged.append(current)
            return payload, self.clock.now + ttl

        self.store.update(key, merge, None)
        assert merged == [None if live is None else live[0]]
        if ttl > 0:
            self.model[key] = (payload, self.clock.now + ttl)
        else:
            self.model.pop(key, None)

    @rule(key=st.sampled_from(_STORE_KEYS))
    def delete(self, key: str) -> None:
        self.store.delete(key)
        self.model.pop(key, None)

    @rule(seconds=st.sampled_from([0.25, 1.0, 4.0, 60.0, 600.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def clear_expired(self) -> None:
        expired = self.expired()
        assert self.store.clear_expired() == len(expired)
        for key in expired:
            del self.model[key]

    @rule(limit=st.integers(1, 5))
    def sweep(self, limit: int) -> None:
        expired = self.expired()
        assert self.store.sweep_expired(limit) == min(limit, len(expired))
        for key in expired:
            if storage_key(key) not in self.store._records:
                del self.model[key]

    @invariant()
    def loads_give_the_live_records(self) -> None:
        for key in _STORE_KEYS:
            record = self.store.load(key)
            live = self.live(key)
            assert (record and (record.payload, record.expires_at)) == live
        assert len(self.store) == len(self.model)

    @invariant()
    def the_heap_covers_every_record_and_stays_bounded(self) -> None:
        earliest: dict[str, float] = {}
        for at, name in self.store._expiries:
            earliest[name] = min(at, earliest.get(name, at))
        for name, record in self.store._records.items():
            assert earliest[name] <= record.expires_at
        assert len(self.store._expiries) <= 2 * len(self.store) + 64


test_memory_store_against_a_dict = pytest.mark.slow(MemoryStoreAgainstADict.TestCase)
test_memory_store_against_a_dict.settings = settings(
    deadline=None, database=None, max_examples=examples(250), stateful_step_count=40
)


def test_updates_of_one_key_moving_its_expiry_earlier_keep_the_heap_small() -> None:
    store = MemoryStore()
    key = _STORE_KEYS[0]
    with clock.use(FakeClock(1_000_000.0)):
        store.create(key, b"x", 1_000_000.0 + 10**6)
        for step in range(2000):  # every save moves the expiry earlier: a push
            expires_at = 1_000_000.0 + 10**6 - step - 1
            store.update(key, lambda _, at=expires_at: (b"y", at), None)
            assert len(store._expiries) <= 2 * len(store) + 64
        assert store.load(key) is not None


def test_a_record_expiring_at_this_very_moment_is_expired_everywhere() -> None:
    """``load`` says so at ``expires_at <= now``: so do the two clean-ups."""
    store = MemoryStore()
    first, second = _STORE_KEYS[:2]
    with clock.use(FakeClock(1_000_000.0)):
        store.create(first, b"x", 1_000_000.0)
        store.create(second, b"y", 1_000_000.0)
        assert store.load(first) is None
        assert store.sweep_expired(1) == 1
        assert store.clear_expired() == 1
        assert len(store) == 0


# -- cookies.session_cookie's kept tail against dump_cookie ----------------------


@st.composite
def _cookie_settings(draw: Any) -> Settings:
    samesite = draw(st.sampled_from(["Lax", "Strict", "None", False]))
    partitioned = draw(st.booleans())
    fixed = samesite == "None" or partitioned
    return Settings(
        cookie_name=draw(st.sampled_from(["sessionid", "sid", "a.b"])),
        cookie_domain=draw(st.sampled_from([None, "example.com", "a.example.org"])),
        cookie_path=draw(st.sampled_from(["/", "/app", "/a/b/"])),
        cookie_secure=True if fixed else draw(st.sampled_from([True, False, "auto"])),
        cookie_httponly=draw(st.booleans()),
        cookie_samesite=samesite,
        cookie_partitioned=partitioned,
        expire_at_browser_close=draw(st.booleans()),
    )


_sent_values = st.one_of(_ids, _ids, st.text(_ID_CHARACTERS + ' ,;"\\é', max_size=20))


@pytest.mark.slow
@EXAMPLES
@given(
    st.lists(_cookie_settings(), min_size=1, max_size=3),
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.booleans(),  # the first request's scheme is https
            _sent_values,
            st.one_of(st.none(), st.sampled_from([0, 1, 3600, 1209600, 10**8])),
            st.one_of(st.sampled_from([1.7e9, 1.7e9 + 0.5]), st.floats(1.0, 4e9)),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_session_cookies_are_what_dump_cookie_writes(
    made: list[Settings], saves: list[tuple[Any, ...]]
) -> None:
    for which, https, value, max_age, now, with_template in saves:
        setup = made[which % len(made)]
        fixed = cookies.fixed_secure(setup)
        for moment in (now, now + 0.5, now + 1.0):  # within a second, and the next
            # cookie_secure = auto: the same cookie over https, then http
            for secure in (https, not https) if fixed is None else (fixed,):
                made_with = cookies.cookie_template(setup, secure)
                template = made_with if with_template else None
                header = cookies.session_cookie(
                    setup, value, max_age, secure, moment, template
                )
                expected = dump_cookie_header(setup, secure, value, max_age, moment)
                assert header == ("Set-Cookie", expected)


@pytest.mark.slow
def test_a_first_cookie_ending_at_the_epoch_has_its_expires_date() -> None:
    """``expires_at_date``'s cache started as (0, ""): a process's first
    cookie ending at second 0 had an empty Expires."""
    first_cookie = (
        "from wsgisession import cookies\n"
        "print(cookies.session_cookie(cookies.Settings(), 'v', 0, False, 0.0)[1])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", first_cookie], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown == dump_cookie_header(Settings(), False, "v", 0, 0.0)
