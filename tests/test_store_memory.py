"""MemoryStore: only what this store does on its own (the protocol is
tested for every store in test_store_contract.py)."""

from __future__ import annotations

from wsgisession import clock
from wsgisession.stores import MemoryStore


def test_an_update_whose_expiry_passes_while_it_merges_is_dropped() -> None:
    """The expiry is checked against the clock after the merge, not before."""
    store = MemoryStore()
    key = store.generate_key()
    moment = [1_000_000.0]

    def stepping() -> float:  # every read moves the clock 6 s on
        moment[0] += 6.0
        return moment[0] - 6.0

    with clock.use(lambda: moment[0]):
        assert store.create(key, b"first", moment[0] + 100) == key
    with clock.use(stepping):
        start = moment[0]  # read before the merge; the check after reads +6 s
        store.update(key, lambda current: (b"second", start + 3.0), None)
    with clock.use(lambda: start):
        assert store.load(key) is None


def test_the_expiry_heap_stays_bounded_as_records_come_and_go() -> None:
    """A create of a new record checks no bound (one entry and one record
    more keep it); a record dropped does, so that creating and deleting
    sessions never grows the heap past twice the records (plus 64)."""
    store = MemoryStore()
    kept = [store.generate_key() for _ in range(10)]
    for key in kept:
        assert store.create(key, b"{}", clock.now() + 3600) == key
    for _ in range(1000):
        key = store.generate_key()
        assert store.create(key, b"{}", clock.now() + 3600) == key
        store.delete(key)
        assert len(store._expiries) <= 2 * len(store) + 64
    assert len(store) == 10
    assert all(store.load(key) is not None for key in kept)
    assert store.sweep_expired(100) == 0
