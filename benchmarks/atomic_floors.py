"""The least an atomic store can do, next to the raw floors and the stores' own code.

Usage (from the repository root)::

    python benchmarks/atomic_floors.py [--only file,sqlite,memcached,redis] [--rounds 11]

The floors of ``_floors.py`` move an opaque blob and check nothing: their
get+set would lose one of two concurrent updates, and their new would
overwrite a live record. A store that keeps wsgisession's promises must at
least make its write conditional (or hold a lock across the read and the
write) and its create fail on a taken name. This script times, in the same
interleaved rounds as ``bench.py`` (``os.sync()`` before each batch):

* ``floor``: ``_floors.py``'s get+set and new, unchanged;
* ``atomic``: the cheapest conditional version of the same raw operations
  (below, per store), still with no session layer and no framing;
* ``store``: the wsgisession store's own ``load`` + ``update`` and
  ``create``, called directly (no middleware, no session layer).

Atomic versions: *file*: the get, then under an ``flock`` held on an open
descriptor the record opened for reading and writing, read again and
overwritten in place (``pwrite``); new: a file created at its fresh name
with ``O_EXCL`` (fails if taken) and written. Neither is atomic for a
reader without the store's checksum (see ``stores/_fileformat.py``), which
they leave out. *SQLite*: the
floor's statements with a new expiry on every save (the store keeps no
index on it: its sweeps walk the key), new a plain ``INSERT`` (fails if
taken). *memcached*: ``gets`` + ``cas``; new ``add``.
*Redis*: ``GET`` + ``EVALSHA`` of the store's compare-and-set script; new
``SET NX PX``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _floors import BLOB, KEY, SMALL, _fresh_keys, build_floor
from _systems import Ctx, scratch, wsgisession_store
from _timing import Case, run_rounds

Ops = dict[str, Callable[[], Any]]
KINDS = ("file", "sqlite", "memcached", "redis")


def file_atomic(directory: Path) -> Ops:
    path = os.fspath(directory / "record")
    lock_path = os.fspath(directory / "lock")
    with open(path, "wb") as f:
        f.write(BLOB)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fresh = _fresh_keys(os.fspath(directory / "new-"))

    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def getset() -> None:
        read()
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            os.stat(lock_path)  # the lock file is still the one locked
            fd = os.open(path, os.O_RDWR)
            try:
                os.read(fd, 65536)
                os.pwrite(fd, BLOB, 0)
            finally:
                os.close(fd)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def new() -> None:  # created at a name that must be free
        fd = os.open(fresh(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, SMALL)
        finally:
            os.close(fd)

    return {"getset": getset, "new": new}


def sqlite_atomic(directory: Path) -> Ops:
    conn = sqlite3.connect(directory / "atomic.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB, e REAL) WITHOUT ROWID"
    )
    execute, key = conn.execute, (KEY,)
    execute("INSERT OR REPLACE INTO t VALUES (?, ?, ?)", (KEY, BLOB, 2e9))
    fresh = _fresh_keys("new:")
    expiry = iter(range(2_000_000_000, 2**62))  # a new expiry on every save

    def getset() -> None:
        execute("BEGIN IMMEDIATE")
        execute("SELECT v, e FROM t WHERE k = ?", key).fetchone()
        execute("INSERT OR REPLACE INTO t VALUES (?, ?, ?)", (KEY, BLOB, next(expiry)))
        execute("COMMIT")

    def new() -> None:
        execute("INSERT INTO t VALUES (?, ?, ?)", (fresh(), SMALL, next(expiry)))

    return {"getset": getset, "new": new}


def memcached_atomic(address: str) -> Ops:
    from pymemcache.client.base import Client

    client = Client(address, no_delay=True, default_noreply=False)
    client.set(KEY, BLOB, expire=3600)
    fresh = _fresh_keys("floor:new:")

    def getset() -> None:
        _, cas = client.gets(KEY)
        if not client.cas(KEY, BLOB, cas, expire=3600):
            raise AssertionError("cas failed with nobody else writing")

    return {"getset": getset, "new": lambda: client.add(fresh(), SMALL, expire=3600)}


def redis_atomic(url: str) -> Ops:
    import redis

    from wsgisession.stores._redis_scripts import COMPARE_AND_SET

    client = redis.Redis.from_url(url)
    client.set(KEY, BLOB, ex=3600)
    script = client.script_load(COMPARE_AND_SET.source)
    fresh = _fresh_keys("floor:new:")

    def getset() -> None:
        seen = client.get(KEY)  # sent back: the script compares the bytes
        if client.evalsha(script, 1, KEY, seen, BLOB, 3_600_000) != 1:
            raise AssertionError("compare-and-set failed with nobody else writing")

    def new() -> None:
        client.set(fresh(), SMALL, nx=True, px=3_600_000)

    return {"getset": getset, "new": new}


def store_ops(kind: str, ctx: Ctx) -> Ops:
    store = wsgisession_store(kind, ctx)
    key = store.generate_key()
    store.create(key, BLOB, time.time() + 3600)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        return BLOB, time.time() + 3600

    def getset() -> None:
        store.update(key, merge, store.load(key))

    def new() -> None:
        store.create(store.generate_key(), SMALL, time.time() + 3600)

    return {"getset": getset, "new": new}


def atomic_ops(kind: str, ctx: Ctx) -> Ops:
    services = ctx.services
    if kind == "file":
        return file_atomic(ctx.directory("atomic", "file"))
    if kind == "sqlite":
        return sqlite_atomic(ctx.directory("atomic", "sqlite"))
    if kind == "memcached":
        return memcached_atomic(services.memcached_address)
    return redis_atomic(services.redis_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(KINDS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--target", type=float, default=0.1, help="seconds per batch")
    parser.add_argument(
        "--fastest",
        action="store_true",
        help="report each case's fastest round instead of the median "
        "(on a busy machine, other processes only ever add time)",
    )
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.only.split(",") if kind]
    with scratch(kinds, "wsgisession-atomic-") as ctx:
        services = ctx.services
        cases = []
        for kind in kinds:
            floor = build_floor(kind, ctx)
            if floor is None:
                print(f"{kind}: skipped ({services.skipped.get(kind, 'no server')})")
                continue
            sources = {
                "floor": floor[0],
                "atomic": atomic_ops(kind, ctx),
                "store": store_ops(kind, ctx),
            }
            for system, ops in sources.items():
                for op in ("getset", "new"):
                    cases.append(Case(system, kind, op, ops[op]))
        run_rounds(cases, rounds=args.rounds, warmup=0.2, target=args.target)
        print(report(cases, min if args.fastest else statistics.median))
    return 0


def report(cases: list[Case], pick: Callable[[list[float]], float]) -> str:
    """A markdown table: µs per operation (``pick`` of the rounds' means), and
    the ratios to floor and atomic."""
    figures = {
        (c.system, c.kind, c.workload): (
            pick(c.samples) if c.samples and c.invalid is None else None
        )
        for c in cases
    }
    head = "| store | op | floor µs | atomic µs | store µs | atomic ÷ floor |"
    lines = [
        head + " store ÷ floor | store ÷ atomic |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in dict.fromkeys(c.kind for c in cases):
        for op in ("getset", "new"):
            floor, atomic, store = (
                figures[system, kind, op] for system in ("floor", "atomic", "store")
            )
            if floor is None or atomic is None or store is None:
                failed = [c.invalid for c in cases if c.kind == kind and c.invalid]
                lines.append(f"| {kind} | {op} | failed: {'; '.join(failed)} |||||||")
                continue
            lines.append(
                f"| {kind} | {op} | {floor:.1f} | {atomic:.1f} | {store:.1f} |"
                f" {atomic / floor:.2f} | {store / floor:.2f} | {store / atomic:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
