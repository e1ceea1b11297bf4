"""What the process keeps for a saved record is what the record's bytes hold.

A request may share its session with threads of its own. A key one of them
sets while a save writes is not in the bytes written; it must not be in
what the process keeps as their decoding either (``envelope.KEPT_DECODINGS``),
else every later load in this process would read a value the store lacks,
and the next save joined from the kept text would write other data than the
session holds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import saved_session

from wsgisession import Session, clock, envelope
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore, SQLiteStore
from wsgisession.stores.base import Store

_SERIALIZER = TaggedJSONSerializer()


def _stored_data(store: Store, key: str) -> dict[str, object]:
    """The session's data as its stored bytes say, decoded without the cache."""
    record = store.load(key)
    assert record is not None
    data: dict[str, object] = _SERIALIZER.loads(record.payload)["data"]
    return data


def _assert_kept_matches_store(store: Store, key: str) -> None:
    """The kept decoding of the stored bytes, if any, is their decoding,
    and a fresh load in this process reads what the store holds."""
    record = store.load(key)
    assert record is not None
    kept = envelope.KEPT_DECODINGS.get(key)
    if kept is not None and kept[0] == record.payload:
        assert kept[1].data == _stored_data(store, key)
    assert dict(Session(store, session_key=key)) == _stored_data(store, key)


def _save_while_a_thread_sets(session: Session, name: str, value: object) -> None:
    """``session.save()``, with ``session[name] = value`` run once the merge
    has made the bytes, during the store's write (as another thread of the
    request would): the clock, which the store reads then, sets it."""
    record = session._record
    assert record is not None
    done = []

    def reading() -> float:
        if not done and getattr(record, "_outcome", None) is not None:
            done.append(True)
            session[name] = value
        return time.time()

    with clock.use(reading):
        session.save()
    assert done, "the store read no clock after the merge"


def test_a_key_set_during_a_full_write_is_not_kept_for_its_bytes() -> None:
    store = MemoryStore()
    key = saved_session(store, a=1, b=2)
    session = Session(store, session_key=key)
    del session["b"]  # a key deleted: every item is written again
    _save_while_a_thread_sets(session, "c", 3)
    assert _stored_data(store, key) == {"a": 1}
    _assert_kept_matches_store(store, key)


def test_a_value_set_during_a_joined_write_is_not_written_later_as_kept() -> None:
    store = MemoryStore()
    key = saved_session(store, a=1, c=0)
    session = Session(store, session_key=key)
    session["a"] = 2  # joined from the kept text
    _save_while_a_thread_sets(session, "c", 3)
    _assert_kept_matches_store(store, key)
    session["a"] = 4  # joined again: the kept text and the session must agree
    session.save()
    assert _stored_data(store, key) == dict(session)
    _assert_kept_matches_store(store, key)


@pytest.mark.slow
def test_threads_setting_keys_during_saves_never_leave_a_wrong_kept_decoding(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(str(tmp_path / "sessions.sqlite"))
    try:
        key = saved_session(store, a=1)
        session = Session(store, session_key=key)
        session.load()
        stop = threading.Event()

        def setting() -> None:
            count = 0
            while not stop.is_set():
                session["c"] = count
                count += 1

        setter = threading.Thread(target=setting)
        setter.start()
        mismatches = 0
        try:
            for count in range(1000):
                session["e"] = count
                session.save()
                record = store.load(key)
                assert record is not None
                kept = envelope.KEPT_DECODINGS.get(key)
                if kept is not None and kept[0] == record.payload:
                    mismatches += kept[1].data != _stored_data(store, key)
        finally:
            stop.set()
            setter.join()
        assert mismatches == 0
    finally:
        store.close()
