"""Filling a file or SQLite store with many sessions, quickly.

Small counts go through the store's own ``create()``. Large ones bypass it
and write records in the store's format directly: rows into the SQLite
table in one transaction (sorted by key, so the B-tree is appended to), or
files in the file store's header + payload format. Either way every record
is a real session envelope that the middleware loads.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from wsgisession.keys import generate_key, storage_key
from wsgisession.stores._fileformat import encode

#: Up to this many records, populate through the public store API.
API_LIMIT = 10_000
#: How many of the populated ids are kept for the random-read workload.
SAMPLE = 2_000


def populate(
    kind: str, store: Any, count: int, payload: bytes, expires_at: float
) -> list[str]:
    """Add ``count`` records to ``store``; return a sample of their session ids."""
    if count <= API_LIMIT:
        ids = [generate_key() for _ in range(count)]
        for key in ids:
            assert store.create(key, payload, expires_at) == key
        return ids[:SAMPLE]
    sample = [generate_key() for _ in range(min(SAMPLE, count))]
    names = [storage_key(key) for key in sample]
    names += (storage_key(generate_key()) for _ in range(count - len(sample)))
    if kind == "sqlite":
        _sqlite_rows(store, names, payload, expires_at)
    else:
        _files(store.path, names, payload, expires_at)
    loaded = store.load(sample[0])
    live = expires_at > time.time()
    assert (loaded is not None) == live, f"{store!r} does not read the records back"
    assert loaded is None or loaded.payload == payload, "records read back changed"
    return sample


def _sqlite_rows(
    store: Any, names: list[str], payload: bytes, expires_at: float
) -> None:
    store.exists(generate_key())  # the store creates its table on first use
    names.sort()
    rows: Iterator[tuple[str, bytes, float]] = (
        (name, payload, expires_at) for name in names
    )
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO wsgisession_sessions (key, payload, expires_at)"
            " VALUES (?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _files(root: str, names: list[str], payload: bytes, expires_at: float) -> None:
    """Files as ``FileStore`` writes them (its header line, then the payload)."""
    record = encode(payload, expires_at)
    for shard in range(256):
        os.makedirs(os.path.join(root, f"{shard:02x}"), mode=0o700, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for name in names:
        fd = os.open(os.path.join(root, name[:2], name), flags, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
