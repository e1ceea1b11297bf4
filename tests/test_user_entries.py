"""The listing the Redis and memcached user indexes share, against a
``cycle_key()`` that runs between its reads (the interleaving a revocation
met in a CI run: a device's new session escaped it and lived on)."""

from __future__ import annotations

from helpers import later

from wsgisession.stores._userentries import Entries, read_live
from wsgisession.stores.base import Record

OLD, NEW = "0" * 64, "f" * 64


def test_a_new_record_confirmed_between_the_reads_is_listed() -> None:
    """The new entry is already in the index, pending, at the first read; its
    record is read (missing), then created and confirmed, and the old record
    deleted, before the old one is read (missing too). The index has the same
    names when read again, but the new entry's score changed: it is read."""
    index: Entries = {NEW: 1_700_000_000_000, OLD: 0}
    records = {OLD: Record(b"old", later())}

    def read_records(names: list[str]) -> dict[str, Record]:
        live = {}
        for name in names:
            if name in records:
                live[name] = records[name]
            if name == NEW and NEW not in records:  # cycle_key() runs now
                records[NEW] = Record(b"new", later())
                index[NEW] = 0
                del records[OLD]
        return live

    live, entries = read_live(lambda: dict(index), read_records)
    assert set(live) == {NEW}
    assert entries == {NEW: 0, OLD: 0}


def test_entries_that_only_go_end_the_listing() -> None:
    """A pending login that never writes its record does not make the
    listing read again and again: the index reads the same."""
    index: Entries = {NEW: 1_700_000_000_000, OLD: 0}
    reads: list[int] = []

    def read_index() -> Entries:
        reads.append(1)
        return dict(index)

    def read_records(names: list[str]) -> dict[str, Record]:
        return {OLD: Record(b"old", later())} if OLD in names else {}

    live, _ = read_live(read_index, read_records)
    assert set(live) == {OLD}
    assert len(reads) == 2
