"""What a store holds, for the session model's invariants (test_session_model*.py).

:class:`Census` lists every live session record a store holds: record name
(``storage_key`` of the id) -> (payload, expires_at). It reads the backing
itself (the memory store's dict, the file store's directory, the SQLite
file, the SQL tables, every Redis master, every memcached server's keys),
so that an orphan record the model does not know is seen. User indexes,
locks and other items beside the records are left out.

The signed cookie store has no server-side records: its census is the
cookies the test has seen that still load, so that the invariant becomes
"every cookie ever issued loads as the model says, until it expires".
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from helpers import _redis_clients, memcached_keys

from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
    SQLStore,
)
from wsgisession.stores._fileformat import decode as decode_file
from wsgisession.stores._shared import unpack
from wsgisession.stores.base import Store, storage_key

Found = dict[str, tuple[bytes, float]]
PREFIX = "wsgisession:"
#: A record's name under the default key prefix (not a lock, not an index).
RECORD_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{64}})$")


class Census:
    """The live records of ``store``, which was built on ``where`` (a path,
    a URL or memcached's ``host:port`` list)."""

    def __init__(self, store: Store, where: str) -> None:
        self.store, self.where = store, where
        self.clients: list[Any] = []
        self.engine: Any = None
        #: Every cookie value the test saw (the cookie store's census).
        self.seen: set[str] = set()

    def __call__(self, now: float) -> Found:
        store = self.store
        if isinstance(store, MemoryStore):
            found = {n: (r.payload, r.expires_at) for n, r in store._records.items()}
        elif isinstance(store, FileStore):
            found = _file_records(self.where)
        elif isinstance(store, SQLiteStore):
            found = _sqlite_records(self.where)
        elif isinstance(store, SQLStore):
            found = self._sql_records()
        elif isinstance(store, RedisStore):
            found = self._redis_records()
        elif isinstance(store, MemcachedStore):
            found = self._memcached_records()
        else:
            assert isinstance(store, SignedCookieStore)
            found = self._cookie_records(self.seen)
        return {n: parts for n, parts in found.items() if parts[1] > now}

    def _sql_records(self) -> Found:
        from sqlalchemy import create_engine, select

        from wsgisession.stores._sqlschema import Tables

        if self.engine is None:
            self.engine = create_engine(self.where, isolation_level="AUTOCOMMIT")
        sessions = Tables("wsgisession_sessions").sessions
        columns = (sessions.c.key, sessions.c.payload, sessions.c.expires_at)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns))
            return {key: (bytes(payload), float(at)) for key, payload, at in rows}

    def _redis_records(self) -> Found:
        if not self.clients:
            self.clients = _redis_clients(self.where)
        found: Found = {}
        for client in self.clients:
            for name in client.keys(f"{PREFIX}*"):
                match = RECORD_NAME.match(name.decode())
                parts = unpack(client.get(name)) if match else None
                if match and parts is not None:
                    found[match.group(1)] = parts
        return found

    def _memcached_records(self) -> Found:
        from pymemcache.client.base import Client  # type: ignore[import-untyped]

        if not self.clients:
            for address in self.where.split():
                host, port = address.rsplit(":", 1)
                self.clients.append(Client((host, int(port)), timeout=5))
        found: Found = {}
        for client in self.clients:
            for name in memcached_keys(client):
                match = RECORD_NAME.match(name)
                parts = unpack(client.get(name)) if match else None
                if match and parts is not None:
                    found[match.group(1)] = parts
        return found

    def _cookie_records(self, values: Iterable[str]) -> Found:
        found: Found = {}
        for value in values:
            record = self.store.load(value)
            if record is not None:
                found[storage_key(value)] = (record.payload, record.expires_at)
        return found

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.engine is not None:
            self.engine.dispose()


def _file_records(where: str) -> Found:
    found: Found = {}
    for path in Path(where).glob("[0-9a-f][0-9a-f]/*"):
        parts = decode_file(path.read_bytes())
        if parts is not None and len(path.name) == 64:
            found[path.name] = parts
    return found


def _sqlite_records(where: str) -> Found:
    if not Path(where).exists():
        return {}
    conn = sqlite3.connect(f"file:{where}?mode=ro", uri=True)
    try:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
        if ("wsgisession_sessions",) not in tables:
            return {}
        rows = conn.execute("SELECT key, payload, expires_at FROM wsgisession_sessions")
        return {name: (payload, expires) for name, payload, expires in rows}
    finally:
        conn.close()
