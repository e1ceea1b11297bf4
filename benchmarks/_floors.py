"""The raw cost of each store on this machine ("floors"), timed in the same run.

Each floor is four operations on a ~1 KB opaque blob, the least a session
layer can do per request: ``get`` (read), ``set`` (overwrite), ``getset``
(read then overwrite: a write request) and ``new`` (a small record under a
fresh key: a new session). The file and SQLite floors are the independent
harness's (``peer-bench/harness/floors.py``), operation for operation. No
session serialization is involved, except for the cookie floor, where
signing and JSON are the work itself.

Two more, ``getset in context`` and ``new in context``, run ``getset`` and
``new`` each right after one request of the matching workload (write, new)
on a middleware over the memory store: the *layer* case, timed on its own
in the same rounds and taken off again in the report. A loop of nothing but
the floor keeps the client library's code and data, and little else, in the
processor's caches, and keeps a server busy enough to answer at once; a
request runs the session layer's code around the same operations, as the
floor in context does. What is left between a store's part of a request and
its floor in context is the store's own code.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _systems import Ctx
from _wsgi import PRIME_DATA

Ops = dict[str, Callable[[], Any]]
Closer = Callable[[], None] | None

OPS = ("get", "set", "getset", "new", "getset in context", "new in context")
#: The workload each in-context floor runs after, by its operation.
CONTEXTS = {"getset": "write", "new": "new"}
#: Which floor operation a workload is compared with.
WORKLOAD_OP = {"read": "get", "write": "getset", "new": "new"}
#: What each floor does, for the report.
DESCRIPTIONS = {
    "sqlite": "sqlite3: SELECT / INSERT OR REPLACE in a transaction, WAL, "
    "synchronous=NORMAL (rowid table, numbered new keys)",
    "file": "file: os.read / write a temp file + os.replace",
    "memcached": "pymemcache: get / set (acknowledged, TCP_NODELAY)",
    "redis": "redis-py: GET / SET with EX",
    "cookie": "itsdangerous URLSafeTimedSerializer: loads / dumps",
    "postgresql": "psycopg 3, autocommit: SELECT / UPDATE by primary key (a new "
    "expiry each time), INSERT (same table shape and indexes as SQLStore)",
}

BLOB_DATA = dict(PRIME_DATA, counter=0)
BLOB = json.dumps(BLOB_DATA).encode()
SMALL_DATA = {"newkey": "v-new"}
SMALL = json.dumps(SMALL_DATA).encode()
KEY = "floor:" + "0" * 64


def _numbered_keys(prefix: str) -> Callable[[], str]:
    """``prefix-000000000000``, ``prefix-000000000001``, ...: the independent
    harness's fresh keys for its SQLite and file floors' new."""
    numbers = itertools.count()
    return lambda: f"{prefix}-{next(numbers):012d}"


def _fresh_keys(prefix: str) -> Callable[[], str]:
    """Random 64-hex-digit names, like the stores' hashed keys: a B-tree sees
    them land anywhere, as real session keys do, not appended in order."""
    return lambda: prefix + secrets.token_hex(32)


def sqlite_floor(directory: Path) -> tuple[Ops, Closer]:
    """The independent harness's SQLite floor, statement for statement.

    A rowid table keyed by a TEXT primary key, deferred ``BEGIN``, new
    records under numbered keys. (A ``WITHOUT ROWID`` table, as the store
    uses, keeps the ~1 KB record on an overflow page: 3 WAL pages per
    commit against 2, a floor about 1.5x as high, and store part ÷ floor
    that much lower than the harness's.)
    """
    conn = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB, e REAL)")
    select, upsert = (
        "SELECT v FROM t WHERE k = ?",
        "INSERT OR REPLACE INTO t VALUES (?, ?, ?)",
    )
    execute, key, row = conn.execute, (KEY,), (KEY, BLOB, 0.0)
    execute(upsert, row)
    fresh = _numbered_keys("new")

    def get() -> Any:
        return execute(select, key).fetchone()

    def set_() -> None:
        execute("BEGIN")
        execute(upsert, row)
        execute("COMMIT")

    def getset() -> None:
        execute("BEGIN")
        execute(select, key).fetchone()
        execute(upsert, row)
        execute("COMMIT")

    def new() -> None:
        execute("BEGIN")
        execute(upsert, (fresh(), SMALL, 0.0))
        execute("COMMIT")

    return {"get": get, "set": set_, "getset": getset, "new": new}, conn.close


def _sequential_ops(
    get: Callable[[], Any], set_: Callable[[], Any], new: Callable[[], Any]
) -> Ops:
    """A floor whose get+set is its get and its set back to back (no transaction)."""

    def getset() -> None:
        get()
        set_()

    return {"get": get, "set": set_, "getset": getset, "new": new}


def file_floor(directory: Path) -> tuple[Ops, Closer]:
    path, temp = os.fspath(directory / "record"), os.fspath(directory / "temp")
    with open(path, "wb") as f:
        f.write(BLOB)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fresh = _numbered_keys(os.fspath(directory / "new"))

    def get() -> bytes:
        # os.open + one os.read, as the harness reads: open() builds a
        # buffered file object (fstat, isatty's ioctl, a second read for
        # EOF), a get 2-3x as long.
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.read(fd, 65536)
        finally:
            os.close(fd)

    def write(data: bytes, target: str) -> None:
        fd = os.open(temp, flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, target)

    return _sequential_ops(
        get, lambda: write(BLOB, path), lambda: write(SMALL, fresh())
    ), None


def memcached_floor(address: str) -> tuple[Ops, Closer]:
    from pymemcache.client.base import Client

    client = Client(address, no_delay=True, default_noreply=False)
    client.set(KEY, BLOB, expire=3600)
    fresh = _fresh_keys("floor:new:")
    return _sequential_ops(
        lambda: client.get(KEY),
        lambda: client.set(KEY, BLOB, expire=3600),
        lambda: client.set(fresh(), SMALL, expire=3600),
    ), client.close


def redis_floor(url: str) -> tuple[Ops, Closer]:
    import redis

    client = redis.Redis.from_url(url)
    client.set(KEY, BLOB, ex=3600)
    fresh = _fresh_keys("floor:new:")
    return _sequential_ops(
        lambda: client.get(KEY),
        lambda: client.set(KEY, BLOB, ex=3600),
        lambda: client.set(fresh(), SMALL, ex=3600),
    ), client.close


def postgresql_floor(url: str) -> tuple[Ops, Closer]:
    """One psycopg connection in autocommit mode: each statement one round trip.

    The table is SQLStore's: the same columns and indexes, ``user_key``
    included. ``set`` writes a new expiry, as every save does (and as the
    Redis floor's ``SET EX`` does): with a constant one, no indexed column
    would change and PostgreSQL would update the row in place (a HOT
    update), which no sliding-expiry save can do.
    """
    import psycopg
    from sqlalchemy import make_url

    parts = make_url(url)
    conn = psycopg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        dbname=parts.database,
        autocommit=True,
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS floor_t (key VARCHAR(80) PRIMARY KEY,"
        " payload BYTEA NOT NULL, expires_at DOUBLE PRECISION NOT NULL,"
        " user_key VARCHAR(64))"
    )
    for column in ("expires_at", "user_key"):
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS floor_t_{column} ON floor_t ({column})"
        )
    upsert = (
        "INSERT INTO floor_t (key, payload, expires_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO UPDATE SET payload = excluded.payload"
    )
    conn.execute(upsert, (KEY, BLOB, 2e9))
    select = (
        "SELECT payload, expires_at FROM floor_t WHERE key = %s AND expires_at > %s"
    )
    update = "UPDATE floor_t SET payload = %s, expires_at = %s WHERE key = %s"
    insert = "INSERT INTO floor_t (key, payload, expires_at) VALUES (%s, %s, %s)"
    fresh = _fresh_keys("new:")
    return _sequential_ops(
        lambda: conn.execute(select, (KEY, time.time())).fetchone(),
        lambda: conn.execute(update, (BLOB, time.time() + 3600, KEY)),
        lambda: conn.execute(insert, (fresh(), SMALL, time.time() + 3600)),
    ), conn.close


def cookie_floor(secret: str) -> tuple[Ops, Closer]:
    from itsdangerous import URLSafeTimedSerializer

    signer = URLSafeTimedSerializer(secret, salt="floor")
    token = signer.dumps(BLOB_DATA)

    def getset() -> str:
        data = signer.loads(token, max_age=3600)
        data["counter"] += 1
        return signer.dumps(data)

    return {
        "get": lambda: signer.loads(token, max_age=3600),
        "set": lambda: signer.dumps(BLOB_DATA),
        "getset": getset,
        "new": lambda: signer.dumps(SMALL_DATA),
    }, None


def in_context(
    layer: Callable[[], Any], operation: Callable[[], Any]
) -> Callable[[], None]:
    """``operation`` right after one session-layer request (``layer``), as one step."""

    def step() -> None:
        layer()
        operation()

    return step


def add_contexts(ops: Ops, layers: dict[str, Callable[[], Any]]) -> Ops:
    """``ops`` with each in-context floor, after the ``layers`` requests by workload."""
    for op, workload in CONTEXTS.items():
        ops[f"{op} in context"] = in_context(layers[workload], ops[op])
    return ops


def build_floor(kind: str, ctx: Ctx) -> tuple[Ops, Closer] | None:
    """The floor of a store kind, or None (memory has none; a server is missing)."""
    services = ctx.services
    built: tuple[Ops, Closer] | None = None
    if kind == "sqlite":
        built = sqlite_floor(ctx.directory("floor", "sqlite"))
    elif kind == "file":
        built = file_floor(ctx.directory("floor", "file"))
    elif kind == "memcached" and services.memcached is not None:
        built = memcached_floor(services.memcached_address)
    elif kind == "redis" and services.redis is not None:
        built = redis_floor(services.redis_url)
    elif kind == "cookie":
        built = cookie_floor(ctx.secret)
    elif kind == "postgresql" and services.postgresql is not None:
        built = postgresql_floor(services.postgresql_url)
    return built
