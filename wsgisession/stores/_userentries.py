"""The listing shared by the Redis and memcached user indexes.

Both keep, per user, record name -> score: the time (ms) the entry was
written while its record may still be on its way, 0 once the record
exists. Their index and records cannot be read in one atomic step, so a
listing reads the index, then the records, and when a record was missing
reads the index again: a ``cycle_key()`` that deleted that record indexed
its new one first, and the new one must be listed too (revocation relies
on it, or the new record would escape). The new entry may already have
been in the index, pending, when its record was read as missing: it is
confirmed (its score set to 0) before the old record goes, so a change of
score, not only a new entry, means the records are read again. A listing
still missing records after ``_ROUNDS`` reads again was never checked
against the index: it is returned as :class:`UnsettledRecords`, which a
revocation reads again (the session moving meanwhile escaped it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .base import PENDING_GRACE, Record, UnsettledRecords, now

__all__ = ["Entries", "read_live", "stale_entries"]

#: Record name -> score (0: the record was created; else ms of the entry).
Entries = dict[str, int]

#: How many times a listing reads the index again while entries appear or
#: are confirmed.
_ROUNDS = 10


def read_live(
    read_index: Callable[[], Entries],
    read_records: Callable[[list[str]], dict[str, Record]],
) -> tuple[dict[str, Record], Entries]:
    """The live records of the index's entries, and the entries as last read."""
    entries = read_index()
    live = read_records(list(entries)) if entries else {}
    for _ in range(_ROUNDS):
        if len(live) == len(entries):
            break
        again = read_index()
        if again.items() <= entries.items():
            break  # nothing added or confirmed since (entries may have gone)
        entries = again
        live = read_records(list(entries))
    else:
        if len(live) != len(entries):  # still changing: this view is unchecked
            live = UnsettledRecords(live)
    return live, entries


def stale_entries(entries: Entries, held: Collection[str]) -> Entries:
    """The entries to prune: their record is not ``held`` by the server at
    all, and created (score 0) or older than ``PENDING_GRACE`` (a login in
    progress writes its record later).

    A record the server still holds stays indexed even if it has expired by
    this host's clock: a save on a host whose clock is behind may renew it
    yet, and it must not live on out of its user's index. The server drops
    it (its TTL), and the next listing prunes its entry.
    """
    oldest_pending = (now() - PENDING_GRACE) * 1000
    return {
        name: score
        for name, score in entries.items()
        if name not in held and (score == 0 or score < oldest_pending)
    }
