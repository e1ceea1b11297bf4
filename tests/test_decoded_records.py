"""Records decoded lately are kept by session key with their bytes; no request sees
another's changes."""

from __future__ import annotations

from helpers import fake_clock

from wsgisession import Session, envelope
from wsgisession.config import Settings
from wsgisession.envelope import Envelope
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores import MemoryStore

JSON = TaggedJSONSerializer()
KEY = "k" * 43


def kept(key: str, payload: bytes) -> bool:
    """Whether ``payload`` is what is kept for session ``key``."""
    entry = envelope._decoded.get(key)
    return entry is not None and entry[0] == payload


def test_the_same_bytes_decode_to_equal_parts_in_separate_dicts() -> None:
    payload = envelope.encode(JSON, Envelope({"user": "alice", "n": 1}, 5.0, 60))
    first = envelope.decode(JSON, payload, KEY)
    assert kept(KEY, payload)
    first.data["user"] = "mallory"
    first.data["extra"] = True
    second = envelope.decode(JSON, bytes(payload), KEY)  # equal bytes, another object
    assert second == Envelope({"user": "alice", "n": 1}, 5.0, 60)
    assert second.data is not first.data


def test_records_with_mutable_values_are_decoded_afresh() -> None:
    payload = envelope.encode(JSON, Envelope({"cart": ["book"]}, 5.0, None))
    first = envelope.decode(JSON, payload, KEY)
    first.data["cart"].append("pen")
    assert KEY not in envelope._decoded
    assert envelope.decode(JSON, payload, KEY).data == {"cart": ["book"]}


def test_large_records_and_other_serializers_are_not_kept() -> None:
    large = envelope.encode(JSON, Envelope({"blob": "x" * 5000}, 5.0, None))
    assert envelope.decode(JSON, large, KEY).data == {"blob": "x" * 5000}
    assert KEY not in envelope._decoded

    class Custom(TaggedJSONSerializer):
        pass

    payload = envelope.encode(Custom(), Envelope({"custom": 1}, 5.0, None))
    assert envelope.decode(Custom(), payload, KEY).data == {"custom": 1}
    assert KEY not in envelope._decoded


def test_sessions_of_one_record_never_share_changes() -> None:
    store = MemoryStore()
    session = Session(store)
    session.update(user="alice", n=1)
    session.save()
    key = session.session_key
    assert key not in envelope._decoded  # new: not kept
    session["n"] = 1
    session.save()
    assert kept(key, store.load(key).payload)  # kept when saved again
    one, two = Session(store, session_key=key), Session(store, session_key=key)
    one["n"] = 2
    del one["user"]
    assert dict(two) == {"user": "alice", "n": 1}
    one.save()
    assert dict(Session(store, session_key=key)) == {"n": 2}
    assert dict(two) == {"user": "alice", "n": 1}


def test_a_kept_record_is_still_checked_for_its_absolute_timeout() -> None:
    store = MemoryStore()
    with fake_clock(1_000_000.0) as clock:
        session = Session(store, Settings(absolute_timeout=60))
        session["n"] = 1
        session.save()
        key = session.session_key
        assert Session(store, Settings(absolute_timeout=60), key).get("n") == 1
        clock.advance(61)
        late = Session(store, Settings(absolute_timeout=60), key)
        assert late.get("n") is None
        assert late.session_key is None


def test_a_kept_record_keeps_its_save_time_and_owner() -> None:
    parts = Envelope({"n": 1}, 5.0, 60, saved_at=7.5, user="alice")
    payload = envelope.encode(JSON, parts)
    assert envelope.decode(JSON, payload, KEY) == parts
    assert kept(KEY, payload)
    again = envelope.decode(JSON, payload, KEY)
    assert again == parts
    assert (again.saved_at, again.user) == (7.5, "alice")
    assert again.data is not envelope._decoded[KEY][1].data


def test_a_kept_record_of_a_revoked_user_session_loads_as_absent() -> None:
    store = MemoryStore()
    session = Session(store)
    session["n"] = 1
    session.bind_user("alice")
    key = session.session_key
    assert Session(store, session_key=key).user_id == "alice"
    assert kept(key, store.load(key).payload)
    (name,) = store.user_session_records("alice")
    assert store.delete_record(name)
    revoked = Session(store, session_key=key)
    assert revoked.get("n") is None
    assert revoked.session_key is None


def test_a_record_saved_with_keys_json_turns_to_text_is_not_kept() -> None:
    parts = Envelope({1: "one"}, 5.0, None)  # type: ignore[dict-item]
    payload = envelope.encode(JSON, parts)
    envelope.remember(JSON, KEY, payload, parts)
    assert KEY not in envelope._decoded
    assert envelope.decode(JSON, payload, KEY).data == {"1": "one"}


def test_a_session_s_other_record_is_decoded_afresh_and_replaces_the_kept_one() -> None:
    old = envelope.encode(JSON, Envelope({"n": 1}, 5.0, None))
    new = envelope.encode(JSON, Envelope({"n": 2}, 5.0, None))
    assert envelope.decode(JSON, old, KEY).data == {"n": 1}
    assert envelope.decode(JSON, new, KEY).data == {"n": 2}  # not the kept one
    assert kept(KEY, new)
    assert envelope.decode(JSON, old, KEY).data == {"n": 1}
    assert envelope.decode(JSON, old, None).data == {"n": 1}  # no key: not kept
    envelope.forget(KEY)
    assert KEY not in envelope._decoded


def test_the_kept_records_are_bounded_and_the_oldest_goes_first() -> None:
    envelope._decoded.clear()
    keys = [f"{number:043d}" for number in range(envelope._KEPT_RECORDS + 1)]
    for number, key in enumerate(keys):
        payload = envelope.encode(JSON, Envelope({"n": number}, 5.0, None))
        envelope.decode(JSON, payload, key)
    assert len(envelope._decoded) == envelope._KEPT_RECORDS
    assert keys[0] not in envelope._decoded
    assert keys[-1] in envelope._decoded
