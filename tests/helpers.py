"""Shared test scaffolding: clocks, store factories and raw WSGI calls.

Test modules import from here (and from ``servers``/``session_flows``),
never from one another. Server fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import settings
from sql_support import SQL_KINDS, sql_url
from werkzeug.http import dump_cookie

from wsgisession import Session, clock, stores
from wsgisession.cli import main
from wsgisession.config import Settings
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore
from wsgisession.stores.base import Store, now


class FakeClock:
    """A clock that stands still until moved: ``advance(seconds)``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"


@contextmanager
def fake_clock(start: float | None = None) -> Iterator[FakeClock]:
    """Every module of wsgisession reads ``FakeClock`` inside the block."""
    fake = FakeClock(start)
    with clock.use(fake):
        yield fake


def examples(full: int) -> int:
    """The hypothesis examples of a test that sets its own count: ``full``
    in the full run, and in the quick loop, whose profile tries 20 where
    hypothesis's default tries 100 (``tests/conftest.py``), a fifth of it."""
    return max(1, full * settings.default.max_examples // 100)


def kept_session(store: stores.MemoryStore) -> str:
    """The key of a session saved twice (``{"a": 2}``): the next save of it
    starts from its kept text."""
    session = Session(store)
    session["a"] = 1
    session.save()
    session["a"] = 2
    session.save()
    key = session.session_key
    assert key is not None
    return key


def later(seconds: float = 600) -> float:
    """An ``expires_at`` ``seconds`` from now (by the shared clock)."""
    return now() + seconds


# -- stores ---------------------------------------------------------------------


#: Every store the shared suites run on: kind -> factory taking the
#: argument of :func:`store_argument` (a path or a server address). A new
#: store joins the contract and lock suites with one entry here (and one in
#: ``store_argument`` if it needs a server).
STORE_FACTORIES: dict[str, Callable[..., Store]] = {
    "memory": lambda argument, **options: stores.MemoryStore(**options),
    "file": stores.FileStore,
    "sqlite": stores.SQLiteStore,
    "memcached": stores.MemcachedStore,
    "redis": stores.RedisStore,
    "sql-postgresql": stores.SQLStore,
    "sql-mariadb": stores.SQLStore,
    "sql-sqlite": stores.SQLStore,
    "memcached-pool": stores.MemcachedStore,  # three servers
    "redis-cluster": stores.RedisStore,  # three masters
}


def _dump_memory(store: Store, argument: str) -> bytes:
    assert isinstance(store, MemoryStore)
    return repr((store._records, store._users, store._owners)).encode()


def _dump_directory(store: Store, argument: str) -> bytes:
    root = Path(argument)
    return b"".join(
        str(path.relative_to(root)).encode()
        + (path.read_bytes() if path.is_file() else b"")
        for path in sorted(root.rglob("*"))
    )


def _dump_sqlite(store: Store, argument: str) -> bytes:
    with sqlite3.connect(argument) as conn:
        return "\n".join(conn.iterdump()).encode()


#: The stores that support a user's sessions (``supports_user_sessions``):
#: kind (a key of STORE_FACTORIES) -> ``dump(store, argument)``, every byte
#: the backing holds, records and user index alike (the user-session suite
#: greps it for raw ids). A store joins tests/test_user_sessions.py with
#: one entry here.
def _dump_redis_node(client: object) -> bytes:
    """Every key of one Redis server and what it holds (strings, sorted sets)."""
    parts = []
    for name in sorted(client.keys("*")):  # type: ignore[attr-defined]
        kind = client.type(name)  # type: ignore[attr-defined]
        if kind == b"zset":
            value = repr(client.zrange(name, 0, -1, withscores=True)).encode()  # type: ignore[attr-defined]
        else:
            value = client.get(name) or b""  # type: ignore[attr-defined]
        parts.append(name + b"=" + value)
    return b"\n".join(parts)


def _redis_clients(argument: str) -> list[object]:
    import redis

    if argument.startswith("redis+cluster://"):
        from redis.cluster import RedisCluster

        cluster = RedisCluster.from_url(argument.replace("+cluster", ""))
        try:
            nodes = cluster.get_primaries()
            return [redis.Redis(host=node.host, port=node.port) for node in nodes]
        finally:
            cluster.close()
    return [redis.Redis.from_url(argument)]


def _dump_redis(store: Store, argument: str) -> bytes:
    dumps = []
    for client in _redis_clients(argument):
        try:
            dumps.append(_dump_redis_node(client))
        finally:
            client.close()  # type: ignore[attr-defined]
    return b"\n".join(dumps)


def memcached_keys(client: object) -> set[str]:
    """A memcached server's keys: the union of crawler dumps, taken until
    two in a row add nothing.

    The LRU crawler answers from a background walk while the LRU
    maintainer moves items between its segments (hot, warm, cold): an
    item being moved can be missing from a dump, twice in a row in a
    loaded CI run (once, from every dump of both servers of a pool), but no
    dump shows a key that is not there. So the dumps go on, for a second at
    most, while they hold fewer keys than the server counts (``curr_items``).
    That count also holds the items that ``flush_all`` (``clean_memcached``)
    or their expiry killed and that the server has not yet reclaimed: a
    dump never shows them, and the idle server's maintainer takes up to a
    second to get to them, so one ``lru_crawler crawl all`` (the expiry
    crawl the server also runs on its own) reclaims them at once. A dump
    cut short, or a foreign reply, is not used.
    """
    names: set[str] = set()
    quiet = clean = 0
    crawled = False
    started = time.monotonic()
    while (waited := time.monotonic() - started) < 2.0:
        if clean:
            time.sleep(0.01)
        dump = client.raw_command(b"lru_crawler metadump all", b"END\r\n")  # type: ignore[attr-defined]
        lines = dump.splitlines()
        if any(line and not line.startswith((b"key=", b"END")) for line in lines):
            time.sleep(0.01)
            continue
        found = {
            unquote(line.split(b" ")[0][4:].decode())
            for line in lines
            if line.startswith(b"key=")
        }
        clean += 1
        quiet = quiet + 1 if found <= names else 0
        names |= found
        counted = int(client.stats()[b"curr_items"])  # type: ignore[attr-defined]
        if clean >= 3 and quiet >= 2 and (len(names) >= counted or waited >= 1.0):
            return names
        if len(names) < counted and not crawled:
            reply = client.raw_command(b"lru_crawler crawl all", b"\r\n")  # type: ignore[attr-defined]
            crawled = reply.startswith(b"OK")
            # A dump asked for during a crawl answers "BUSY" with no "END".
            while int(client.stats()[b"lru_crawler_running"]):  # type: ignore[attr-defined]
                time.sleep(0.005)
    raise AssertionError("memcached's crawler dumps never settled")


def evict_user_index(store: Store, user: str) -> None:
    """Delete ``user``'s index from every server of a memcached ``store``:
    what memcached does to an item under memory pressure, or a restart."""
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    from wsgisession.keys import user_storage_key

    name = store._key_prefix + user_storage_key(user) + ":user"  # type: ignore[attr-defined]
    for server in store._servers:  # type: ignore[attr-defined]
        client = Client(server.address, timeout=5)
        try:
            client.delete(name, noreply=False)
        finally:
            client.close()


def _dump_memcached(store: Store, argument: str) -> bytes:
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    parts = []
    for address in argument.split():
        host, port = address.rsplit(":", 1)
        client = Client((host, int(port)), timeout=5)
        try:
            for name in sorted(memcached_keys(client)):
                parts.append(name.encode() + b"=" + (client.get(name) or b""))
        finally:
            client.close()
    return b"\n".join(parts)


def _dump_sql(store: Store, argument: str) -> bytes:
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(argument)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            rows = [
                (table.name, list(conn.execute(select(table))))
                for table in metadata.sorted_tables
            ]
    finally:
        engine.dispose()
    return repr(rows).encode()


USER_SESSION_STORES: dict[str, Callable[[Store, str], bytes]] = {
    "memory": _dump_memory,
    "file": _dump_directory,
    "sqlite": _dump_sqlite,
    "redis": _dump_redis,
    "redis-cluster": _dump_redis,
    "memcached": _dump_memcached,
    "memcached-pool": _dump_memcached,
    "sql-postgresql": _dump_sql,
    "sql-mariadb": _dump_sql,
    "sql-sqlite": _dump_sql,
}


def build_store(kind: str, argument: str, **options: object) -> Store:
    """The store of ``kind`` on ``argument`` (a path or a server address)."""
    return STORE_FACTORIES[kind](argument, **options)


def store_argument(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What the store of ``kind`` is built from: a path or a server address.

    A server-backed store gets its server from the ``clean_<kind>`` fixture;
    the SQL kinds get a database URL with the store's tables empty.
    """
    if kind == "file":
        return str(tmp_path / "sessions")
    if kind == "sqlite":
        return str(tmp_path / "sessions.sqlite3")
    if kind in ("memcached", "redis"):
        server = request.getfixturevalue(f"clean_{kind}")
        return str(server.address if kind == "memcached" else server.url)
    if kind in SQL_KINDS:
        return sql_url(kind, request, tmp_path)
    if kind == "memcached-pool":
        return str(request.getfixturevalue("clean_memcached_pool").spec)
    if kind == "redis-cluster":
        return str(request.getfixturevalue("clean_redis_cluster").url)
    return ""


def make_store(kind: str, tmp_path: Path) -> Store:
    """A local store (memory, file or sqlite) under ``tmp_path``."""
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(tmp_path / "sessions")
    return SQLiteStore(tmp_path / "sessions.sqlite3")


def payload_of(store: Store, key: str) -> bytes:
    """The stored bytes of ``key``, which must be live."""
    record = store.load(key)
    assert record is not None
    assert type(record.payload) is bytes
    return record.payload


def increment(store: Store, key: str, fields: list[str], times: int) -> None:
    """``times`` requests, each loading the session and adding 1 to ``fields``."""

    def merge(current: bytes | None) -> tuple[bytes, float]:
        data = json.loads(current) if current is not None else {}
        data.update({field: data.get(field, 0) + 1 for field in fields})
        return json.dumps(data).encode(), later()

    for _ in range(times):
        store.update(key, merge, store.load(key))


# -- raw WSGI calls -------------------------------------------------------------


def increment_app(environ, start_response):
    """Increments the session key named by the query string."""
    session = environ["wsgisession"]
    name = environ["QUERY_STRING"] or "counter"
    session[name] = session.get(name, 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session[name]).encode()]


def get(
    app, query: str = "", cookie: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """One GET with ``query`` and ``cookie``, body consumed: (status, headers)."""
    status, headers, _ = get_response(app, query, cookie)
    return status, headers


def get_response(
    app, query: str = "", cookie: str | None = None
) -> tuple[str, list[tuple[str, str]], bytes]:
    """One GET with ``query`` and ``cookie``: (status, headers, body)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    seen: list = []

    def start_response(status, headers, exc_info=None):
        seen[:] = [status, list(headers)]
        return lambda data: None

    body = app(environ, start_response)
    content = b"".join(body)
    getattr(body, "close", lambda: None)()
    return seen[0], seen[1], content


def call(app, query: str, cookie: str | None) -> list[tuple[str, str]]:
    """One GET with ``query`` and ``cookie``; the headers (the status must be 200)."""
    status, headers = get(app, query, cookie)
    assert status.startswith("200")
    return headers


def user_app(environ, start_response):
    """``?login=U`` binds, ``?cycle`` cycles, ``?set=V`` stores V; the body
    is ``user_id handle value``."""
    session = environ["wsgisession"]
    query = environ["QUERY_STRING"]
    action, _, value = unquote(query).partition("=")
    if action == "login":
        session["agent"] = environ.get("HTTP_USER_AGENT", "")
        session.bind_user(value)
    elif action == "cycle":
        session.cycle_key()
    elif action == "set":
        session["value"] = value
    elif action == "logout":
        session.flush()
    body = f"{session.user_id} {session.handle} {session.get('value')}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


def new_session(app) -> str:
    """Start a session on ``app``; its ``name=value`` cookie."""
    headers = call(app, "counter", None)
    cookie = next(v for k, v in headers if k == "Set-Cookie")
    return cookie.split(";", 1)[0]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit status, stdout and stderr of ``wsgisession argv``, in-process."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def filter_ini(tmp_path: Path, keys: str) -> str:
    """An ini file with a ``[filter:session]`` of ``keys``; its ``FILE#section``."""
    path = tmp_path / "app.ini"
    body = textwrap.dedent(keys).strip()
    path.write_text(f"[filter:session]\nuse = egg:wsgisession#session\n{body}\n")
    return f"{path}#session"


def dump_cookie_header(
    made: Settings, secure: bool, value: str, max_age: int | None, moment: float
) -> str:
    """The session cookie werkzeug's ``dump_cookie`` writes for ``made``'s
    attributes, saved at ``moment``: what the middleware's own must equal."""
    return dump_cookie(
        made.cookie_name,
        value,
        max_age=max_age,
        expires=None if max_age is None else int(moment) + max_age,
        path=made.cookie_path,
        domain=made.cookie_domain,
        secure=secure,
        httponly=made.cookie_httponly,
        samesite=made.cookie_samesite or None,
        partitioned=made.cookie_partitioned,
        max_size=0,
    )


def saved_session(store: Store, **data: object) -> str:
    """The key of a new session of ``store`` holding ``data``, saved."""
    session = Session(store)
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key


def store_fixture(kinds: list[str]) -> Any:
    """A ``store`` fixture over ``kinds`` (see :func:`build_store`), closed after."""

    @pytest.fixture(params=kinds)
    def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
        kind: str = request.param
        built = build_store(kind, store_argument(kind, request, tmp_path))
        yield built
        built.close()

    return store


def sqlite_rows(path) -> int:
    """The records in an SQLite store's file, expired ones included."""
    connection = sqlite3.connect(path)
    try:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM wsgisession_sessions"
        ).fetchone()
    finally:
        connection.close()
    return int(count)
