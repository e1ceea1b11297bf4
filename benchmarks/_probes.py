"""What a request really did to the store, seen from the store's side.

memcached: the server's storage counters (``cmd_set`` counts set, add, cas
and the like; plus deletes and touches). Redis: ``INFO commandstats`` for
every command that can write. File and SQLite: which files under the
store's directory changed (size, mtime or inode). PostgreSQL: which rows
of the session tables (wsgisession's and Beaker's) are new, gone or have a
new ``xmin`` (the transaction that wrote them). SQLite's ``-shm`` file
is left out: it is the WAL index in shared memory, which readers also
touch, not data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from _servers import Services

_MEMCACHED_WRITES = ("cmd_set", "cmd_touch", "delete_hits", "delete_misses")
_PG_TABLES = (("wsgisession_sessions", "key"), ("beaker_cache", "namespace"))
_REDIS_READS = frozenset(
    ("get", "mget", "exists", "ttl", "pttl", "strlen", "type", "info", "ping")
    + ("hello", "select", "client", "command", "config", "script")
)


class Writes(NamedTuple):
    """``total`` writes seen (files changed, or server write commands); ``text``."""

    total: int
    text: str


class WriteProbe:
    """Counts store writes across a number of requests of one workload."""

    def __init__(self, kind: str, directory: Path | None, services: Services) -> None:
        self.kind = kind
        self.directory = directory
        self.services = services
        self._client: Any = None

    def writes(self, step: Callable[[], Any], count: int = 20) -> Writes | None:
        """Run ``step`` ``count`` times and say what it wrote (None: cannot tell)."""
        before = self._snapshot()
        for _ in range(count):
            step()
        after = self._snapshot()
        if before is None or after is None:
            return None
        if self.kind in ("file", "sqlite", "postgresql"):
            paths = before.keys() | after.keys()
            changed = sum(1 for p in paths if before.get(p) != after.get(p))
            what = "rows" if self.kind == "postgresql" else "files"
            return Writes(changed, f"{changed} {what} changed in {count} req")
        total = sum(after.get(k, 0) - before.get(k, 0) for k in after)
        return Writes(total, f"{total / count:.2f}/req ({_names(before, after)})")

    def _snapshot(self) -> dict[str, Any] | None:
        if self.kind in ("file", "sqlite") and self.directory is not None:
            return _files(self.directory)
        if self.kind == "memcached" and self.services.memcached is not None:
            if self._client is None:
                from pymemcache.client.base import Client

                self._client = Client(self.services.memcached_address)
            stats = self._client.stats()
            return {
                name: int(stats.get(name.encode(), 0)) for name in _MEMCACHED_WRITES
            }
        if self.kind == "postgresql" and self.services.postgresql is not None:
            return self._postgresql_rows()
        if self.kind == "redis" and self.services.redis is not None:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(self.services.redis_url)
            stats = self._client.info("commandstats")
            return {
                name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in stats.items()
                if name.removeprefix("cmdstat_").split("|")[0] not in _REDIS_READS
            }
        return None

    def _postgresql_rows(self) -> dict[str, Any]:
        if self._client is None:
            from sqlalchemy import create_engine

            url = self.services.postgresql_url
            self._client = create_engine(url, isolation_level="AUTOCOMMIT")
        rows: dict[str, Any] = {}
        with self._client.connect() as conn:
            for table, key in _PG_TABLES:
                if conn.exec_driver_sql(f"SELECT to_regclass('{table}')").scalar():
                    query = f"SELECT {key}, xmin::text FROM {table}"
                    rows |= {f"{table}/{k}": x for k, x in conn.exec_driver_sql(query)}
        return rows

    def close(self) -> None:
        if self._client is not None and self.kind == "postgresql":
            self._client.dispose()
            self._client = None
        if self._client is not None:
            self._client.close()
            self._client = None


def _files(directory: Path) -> dict[str, tuple[int, int, int]]:
    seen = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if name.endswith("-shm"):
                continue
            path = os.path.join(root, name)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            seen[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
    return seen


def _names(before: dict[str, Any], after: dict[str, Any]) -> str:
    moved = [
        f"{key} +{after[key] - before.get(key, 0)}"
        for key in sorted(after)
        if after[key] != before.get(key, 0)
    ]
    return " ".join(moved) if moved else "none"
