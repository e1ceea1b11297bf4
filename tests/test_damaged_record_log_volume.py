"""A damaged record's cookie sent again and again logs one WARNING, not one each.

A record whose framing a store cannot read (a file cut short, an SQL row
whose expiry is no time, a memcached or Redis value of the wrong format)
loads as absent, and the next save puts the session under a new id: the
damaged record stays until it expires or a sweep removes it. Whoever holds
its old cookie can send it at will, and each request loaded the record
and logged a WARNING (10,000 requests, 10,000 lines on every server-side
store). deploying.rst promises that a store's warnings about bad records
are logged at most once a minute, the rest at DEBUG, as the signed cookie
store's rejected cookies are.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webtest
from servers import ServerProcess
from sql_support import sql_url

from wsgisession import SessionMiddleware
from wsgisession.keys import storage_key
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    RedisStore,
    SQLiteStore,
    SQLStore,
)
from wsgisession.stores.base import Store

Environ = dict[str, Any]
PREFIX = "wsgisession:"  # the memcached and Redis stores' default key_prefix
#: memcached and Redis values: a format byte and the expiry, then the payload.
UNKNOWN_FORMAT = struct.Struct(">Bd").pack(9, time.time() + 3600) + b"{}"
RESENT = 30

#: A store, and what damages the record of a session id in it.
Damaged = tuple[Store, Callable[[str], None]]


def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """``/write`` sets ``n``; any path shows how many keys the session has."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] == "/write":
        session["n"] = 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(session)).encode()]


def _file(tmp_path: Path, request: pytest.FixtureRequest) -> Damaged:
    def damage(session_id: str) -> None:
        name = storage_key(session_id)
        (tmp_path / "sessions" / name[:2] / name).write_bytes(b"wss2 cut short")

    return FileStore(tmp_path / "sessions"), damage


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Damaged:
    path = tmp_path / "sessions.sqlite3"

    def damage(session_id: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE wsgisession_sessions SET expires_at = 'soon' WHERE key = ?",
                (storage_key(session_id),),
            )
        conn.close()

    return SQLiteStore(path), damage


def _postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> Damaged:
    from sqlalchemy import create_engine, text

    url = sql_url("sql-postgresql", request, tmp_path)

    def damage(session_id: str) -> None:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(
                text(
                    "UPDATE wsgisession_sessions SET expires_at = 'NaN' WHERE key = :k"
                ),
                {"k": storage_key(session_id)},
            )
        admin.dispose()

    return SQLStore(url), damage


def _memcached(tmp_path: Path, request: pytest.FixtureRequest) -> Damaged:
    from pymemcache.client.base import Client

    server: ServerProcess = request.getfixturevalue("clean_memcached")

    def damage(session_id: str) -> None:
        client = Client((server.host, server.port), timeout=5)
        name = PREFIX + storage_key(session_id)
        assert client.set(name, UNKNOWN_FORMAT, expire=3600, noreply=False)
        client.close()

    return MemcachedStore([server.address]), damage


def _redis(tmp_path: Path, request: pytest.FixtureRequest) -> Damaged:
    import redis

    server: ServerProcess = request.getfixturevalue("clean_redis")

    def damage(session_id: str) -> None:
        client = redis.Redis(host=server.host, port=server.port)
        assert client.set(PREFIX + storage_key(session_id), UNKNOWN_FORMAT)
        client.close()

    return RedisStore(server.url), damage


STORES = [
    pytest.param(_file, id="file"),
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_memcached, id="memcached"),
    pytest.param(_redis, id="redis"),
    pytest.param(_postgresql, id="postgresql", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("make", STORES)
def test_a_damaged_records_cookie_sent_again_logs_one_warning(
    make: Callable[[Path, pytest.FixtureRequest], Damaged],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, damage = make(tmp_path, request)
    client = webtest.TestApp(SessionMiddleware(app, store=store))
    client.get("/write")
    session_id = client.cookies["sessionid"]
    client.reset()  # the header below alone names it
    damage(session_id)
    caplog.set_level(logging.DEBUG, logger="wsgisession.stores")
    for _ in range(RESENT):
        response = client.get("/", headers={"Cookie": f"sessionid={session_id}"})
        assert response.text == "0"
    about_store = [r for r in caplog.records if repr(store) in r.getMessage()]
    levels = [r.levelname for r in about_store]
    assert levels == ["WARNING"] + ["DEBUG"] * (RESENT - 1), levels
    store.close()
