"""Corrupt stored records, loaded through the middleware, on every server-side store.

A real session is saved, then its stored record is overwritten in place:
first the payload inside the store's own framing (truncated, garbage,
JSON of the wrong shape, an older or newer envelope, non-dict data, a bad
expiry), then the framing itself (file header, memcached/Redis value header,
SQLite column types). Each time a request with the session's cookie must
get an empty session, exactly one WARNING naming the store, and no 5xx;
the next save must replace the record so that the request after it reads
the new data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.keys import storage_key
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
)
from wsgisession.stores._fileformat import encode
from wsgisession.stores.base import Store

Environ = dict[str, Any]
COOKIE = "sessionid"
SLOW = pytest.mark.slow
PREFIX = "wsgisession:"  # the memcached and Redis stores' default key_prefix
VALUE_HEADER = struct.Struct(">Bd")  # memcached and Redis: format byte, expires_at


def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """``/read`` shows the session; ``/write?N`` sets ``n`` to N."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] == "/write":
        session["n"] = int(environ["QUERY_STRING"])
    body = json.dumps(dict(session), sort_keys=True)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


def call(
    middleware: Any, path: str, query: str = "", cookie: str | None = None
) -> tuple[str, str | None, str]:
    """One request; returns (status, the session cookie set or None, body)."""
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = f"{COOKIE}={cookie}"
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = middleware(environ, start_response)
    body = b"".join(result).decode()
    getattr(result, "close", lambda: None)()
    set_cookie = None
    for name, value in seen["headers"]:
        if name.lower() == "set-cookie" and value.startswith(COOKIE + "="):
            set_cookie = value.split(";", 1)[0].split("=", 1)[1]
    return seen["status"], set_cookie, body


# -- stores and how to overwrite their records ---------------------------------


@dataclass
class Target:
    """A store plus two ways to overwrite a session's record in place."""

    name: str
    store: Store
    #: (session id, payload): replace the payload, keeping the store's framing valid.
    put_payload: Callable[[str, bytes], None]
    #: (session id, raw): replace whatever the store keeps for the record.
    put_raw: Callable[[str, Any], None]


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    store = MemoryStore()

    def put_payload(session_id: str, payload: bytes) -> None:
        name = storage_key(session_id)
        store._records[name] = store._records[name]._replace(payload=payload)

    def put_raw(session_id: str, raw: Any) -> None:
        raise AssertionError("MemoryStore keeps Python tuples: no framing to corrupt")

    return Target("memory", store, put_payload, put_raw)


def _file(tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    store = FileStore(tmp_path / "sessions")

    def path_of(session_id: str) -> Path:
        name = storage_key(session_id)
        return tmp_path / "sessions" / name[:2] / name

    def put_payload(session_id: str, payload: bytes) -> None:
        # The documented layout, "wss2 <expires_at> <length> <CRC-32>\n" + payload.
        path_of(session_id).write_bytes(encode(payload, time.time() + 3600))

    def put_raw(session_id: str, raw: Any) -> None:
        path_of(session_id).write_bytes(raw)

    return Target("file", store, put_payload, put_raw)


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)

    def execute(sql: str, *args: Any) -> None:
        with sqlite3.connect(path) as conn:
            assert conn.execute(sql, args).rowcount == 1
        conn.close()

    def put_payload(session_id: str, payload: bytes) -> None:
        execute(
            "UPDATE wsgisession_sessions SET payload = ? WHERE key = ?",
            payload,
            storage_key(session_id),
        )

    def put_raw(session_id: str, raw: Any) -> None:
        column, value = raw
        execute(
            f"UPDATE wsgisession_sessions SET {column} = ? WHERE key = ?",
            value,
            storage_key(session_id),
        )

    return Target("sqlite", store, put_payload, put_raw)


def _memcached(tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    from pymemcache.client.base import Client

    server: ServerProcess = request.getfixturevalue("clean_memcached")
    store = MemcachedStore([server.address])
    client = Client((server.host, server.port), timeout=5)
    request.addfinalizer(client.close)

    def put_raw(session_id: str, raw: Any) -> None:
        name = PREFIX + storage_key(session_id)
        assert client.set(name, raw, expire=3600, noreply=False)

    def put_payload(session_id: str, payload: bytes) -> None:
        put_raw(session_id, VALUE_HEADER.pack(1, time.time() + 3600) + payload)

    return Target("memcached", store, put_payload, put_raw)


def _redis(tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    import redis

    server: ServerProcess = request.getfixturevalue("clean_redis")
    store = RedisStore(server.url)
    client = redis.Redis(host=server.host, port=server.port)
    request.addfinalizer(client.close)

    def put_raw(session_id: str, raw: Any) -> None:
        assert client.set(PREFIX + storage_key(session_id), raw, px=3_600_000)

    def put_payload(session_id: str, payload: bytes) -> None:
        put_raw(session_id, VALUE_HEADER.pack(1, time.time() + 3600) + payload)

    return Target("redis", store, put_payload, put_raw)


TARGETS: dict[str, Callable[[Path, pytest.FixtureRequest], Target]] = {
    "memory": _memory,
    "file": _file,
    "sqlite": _sqlite,
    "memcached": _memcached,
    "redis": _redis,
}


# -- the corruptions ------------------------------------------------------------

NOW = time.time()


def envelope(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


V1: dict[str, Any] = {"v": 1, "data": {"n": 5}, "created": NOW, "expiry": None}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


PAYLOADS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda good: good[: len(good) // 2],
    "truncated by one byte": lambda good: good[:-1],
    "empty": lambda good: b"",
    "random garbage": lambda good: random.Random(5).randbytes(64),
    "not utf-8": lambda good: b'{"v": 1, "data": {"n": "\xff\xfe"}}',
    "nul bytes": lambda good: b"\x00" * 32,
    "json list": lambda good: b"[1, 2, 3]",
    "json string": lambda good: b'"a string"',
    "json null": lambda good: b"null",
    "json number": lambda good: b"42",
    "json true": lambda good: b"true",
    "older format v0": lambda good: envelope(**{**V1, "v": 0}),
    "newer format v2": lambda good: envelope(**{**V1, "v": 2}),
    "version as text": lambda good: envelope(**{**V1, "v": "1"}),
    "no envelope (bare dict)": lambda good: envelope(n=5),
    "no version key": lambda good: envelope(data={"n": 5}, created=NOW, expiry=None),
    "data is a list": lambda good: envelope(**{**V1, "data": [1, 2]}),
    "data is a string": lambda good: envelope(**{**V1, "data": "n=5"}),
    "data is null": lambda good: envelope(**{**V1, "data": None}),
    "data missing": lambda good: envelope(v=1, created=NOW, expiry=None),
    "created is text": lambda good: envelope(**{**V1, "created": "yesterday"}),
    "created is null": lambda good: envelope(**{**V1, "created": None}),
    "created missing": lambda good: envelope(v=1, data={"n": 5}, expiry=None),
    "expiry is a float": lambda good: envelope(**{**V1, "expiry": 1.5}),
    "expiry is a list": lambda good: envelope(**{**V1, "expiry": [3600]}),
    "expiry is a bool": lambda good: envelope(**{**V1, "expiry": True}),
    "expiry is a dict": lambda good: envelope(**{**V1, "expiry": {"s": 1}}),
    "expiry is not a date": lambda good: envelope(**{**V1, "expiry": "soon"}),
    "expiry missing": lambda good: envelope(v=1, data={"n": 5}, created=NOW),
    "deeply nested json": lambda good: b"[" * 100_000 + b"]" * 100_000,
    # Readable, but no save could have written them: each made every later
    # load (a huge number) or save (an expiry out of range, a lone surrogate
    # or a nesting the encoder refuses) of the session raise.
    "created is a huge integer": lambda good: envelope(**{**V1, "created": 10**400}),
    "save time is a huge integer": lambda good: envelope(**{**V1, "saved": 10**400}),
    "expiry of 10**30 s": lambda good: envelope(**{**V1, "expiry": 10**30}),
    "expiry in year 1": lambda good: envelope(**{**V1, "expiry": "0001-01-01T00:00"}),
    "a lone surrogate in a list": lambda good: envelope(
        **{**V1, "data": {"n": ["\ud800"]}}
    ),
    "a lone surrogate in a key": lambda good: envelope(**{**V1, "data": {"\udfff": 5}}),
    "nested 300 deep": lambda good: envelope(**{**V1, "data": {"n": nested(300)}}),
    "a pickle": lambda good: pickle.dumps({"n": 5}),
    # bind_user() refuses an empty owner: a record naming one was not saved.
    "owner is empty": lambda good: envelope(**{**V1, "user": ""}),
    "owner is a number": lambda good: envelope(**{**V1, "user": 7}),
}

GOOD_PAYLOAD = b'{"v":1,"data":{"n":5},"created":1.0,"expiry":null}'


def _value(expires_at: float, payload: bytes = GOOD_PAYLOAD, fmt: int = 1) -> bytes:
    return VALUE_HEADER.pack(fmt, expires_at) + payload


# memcached and Redis frame values alike (stores/_shared.py: pack/unpack).
FRAMED_DAMAGE: list[tuple[str, Any]] = [
    ("empty value", b""),
    ("one byte", b"\x01"),
    ("header cut short", _value(NOW + 3600)[:5]),
    ("unknown format byte", _value(NOW + 3600, fmt=9)),
    ("expiry nan", _value(math.nan)),
    ("no header at all", GOOD_PAYLOAD),
]

FRAMINGS: dict[str, list[tuple[str, Any]]] = {
    "file": [
        ("empty file", b""),
        ("magic only", b"wss1"),
        ("no newline", b"wss1 9999999999.0 10"),
        ("wrong magic", b"wss9 9999999999.0 %d\n" % len(GOOD_PAYLOAD) + GOOD_PAYLOAD),
        ("expiry not a number", b"wss1 soon %d\n" % len(GOOD_PAYLOAD) + GOOD_PAYLOAD),
        ("expiry nan", b"wss1 nan %d\n" % len(GOOD_PAYLOAD) + GOOD_PAYLOAD),
        ("length too long", b"wss1 9999999999.0 999\n" + GOOD_PAYLOAD),
        ("length too short", b"wss1 9999999999.0 3\n" + GOOD_PAYLOAD),
        ("length negative", b"wss1 9999999999.0 -1\n" + GOOD_PAYLOAD),
        ("truncated header", b"wss1 99999"),
        ("random garbage", random.Random(7).randbytes(200)),
        ("header of 10 KB", b"wss1 " + b"9" * 10240 + b" 2\n{}"),
    ],
    "sqlite": [
        ("payload stored as TEXT", ("payload", GOOD_PAYLOAD.decode())),
        ("payload stored as INTEGER", ("payload", 7)),
        ("payload stored as REAL", ("payload", 2.5)),
        ("expires_at stored as TEXT", ("expires_at", "soon")),
        ("expires_at stored as BLOB", ("expires_at", b"\x00\x01")),
    ],
    "memcached": FRAMED_DAMAGE,
    "redis": FRAMED_DAMAGE,
}


# -- the checks ------------------------------------------------------------------


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """Take the WARNING-or-worse messages logged since the last call."""
    caplog.set_level(logging.WARNING)

    def take() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        caplog.clear()
        return found

    yield take


def start_session(target: Target) -> tuple[SessionMiddleware, str]:
    middleware = SessionMiddleware(app, store=target.store)
    status, cookie, _body = call(middleware, "/write", "5")
    assert status.startswith("200") and cookie is not None
    assert call(middleware, "/read", cookie=cookie)[2] == '{"n": 5}'
    return middleware, cookie


def check_recovery(
    target: Target,
    middleware: SessionMiddleware,
    cookie: str,
    warnings: Callable[[], list[str]],
) -> None:
    """Empty session and one warning; then a save replaces the record."""
    warnings()
    status, _set_cookie, body = call(middleware, "/read", cookie=cookie)
    assert status.startswith("200")
    assert body == "{}", f"a corrupt record loaded as {body}"
    logged = warnings()
    assert len(logged) == 1, f"expected one WARNING, got {logged}"
    assert repr(target.store) in logged[0], f"the warning names no store: {logged}"

    status, new_cookie, body = call(middleware, "/write", "7", cookie=cookie)
    assert status.startswith("200") and body == '{"n": 7}'
    assert new_cookie, "the save sent no cookie"
    assert len(warnings()) <= 1

    assert call(middleware, "/read", cookie=new_cookie)[2] == '{"n": 7}'
    assert warnings() == [], "the record was not replaced by the save"


#: Decoding a payload is the session's, whatever the store: the quick loop
#: tries every corruption on the memory store and these, byte-level ones and
#: the costliest to parse, through every store; the full run, every pair.
ON_EVERY_STORE = {
    "empty",
    "truncated",
    "random garbage",
    "not utf-8",
    "nul bytes",
    "newer format v2",
    "deeply nested json",
}
PAYLOAD_CASES = [
    pytest.param(
        kind,
        corruption,
        id=f"{kind}-{corruption}",
        marks=() if kind == "memory" or corruption in ON_EVERY_STORE else SLOW,
    )
    for kind in TARGETS
    for corruption in PAYLOADS
]


@pytest.mark.parametrize(("kind", "corruption"), PAYLOAD_CASES)
def test_corrupt_payload(
    kind: str,
    corruption: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    warnings: Callable[[], list[str]],
) -> None:
    target = TARGETS[kind](tmp_path, request)
    middleware, cookie = start_session(target)
    good = target.store.load(cookie)
    assert good is not None
    target.put_payload(cookie, PAYLOADS[corruption](good.payload))
    check_recovery(target, middleware, cookie, warnings)


FRAMING_CASES = [
    pytest.param(kind, raw, id=f"{kind}-{label}")
    for kind, cases in FRAMINGS.items()
    for label, raw in cases
]


@pytest.mark.parametrize(("kind", "raw"), FRAMING_CASES)
def test_corrupt_framing(
    kind: str,
    raw: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    warnings: Callable[[], list[str]],
) -> None:
    target = TARGETS[kind](tmp_path, request)
    middleware, cookie = start_session(target)
    target.put_raw(cookie, raw)
    check_recovery(target, middleware, cookie, warnings)


def test_unreadable_file_records_are_cleared(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A corrupt file that a new key replaced does not stay on disk forever."""
    target = _file(tmp_path, request)
    middleware, cookie = start_session(target)
    target.put_raw(cookie, b"wss1 garbage")
    call(middleware, "/write", "7", cookie=cookie)
    name = storage_key(cookie)
    path = tmp_path / "sessions" / name[:2] / name
    assert path.exists()
    past = time.time() - 61  # younger, it may be a new record being written
    os.utime(path, (past, past))
    assert target.store.clear_expired() >= 1
    assert not (tmp_path / "sessions" / name[:2] / name).exists()


@pytest.mark.parametrize("value", ["soon", b"\x00\x01"], ids=["text", "blob"])
def test_damaged_sqlite_rows_are_cleared(
    value: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A row whose ``expires_at`` is not a number is removed like an expired one,
    as the file store removes unreadable files, rather than kept forever."""
    target = _sqlite(tmp_path, request)
    middleware, cookie = start_session(target)
    target.put_raw(cookie, ("expires_at", value))
    call(middleware, "/write", "7", cookie=cookie)
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as conn:
        before = conn.execute("SELECT count(*) FROM wsgisession_sessions").fetchone()
    conn.close()
    assert before == (2,)
    assert target.store.clear_expired() == 1
    assert target.store.load(cookie) is None


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_record_of_another_serializer_warns_once_however_often_it_is_read(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    warnings: Callable[[], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a change of serializer every old record is corrupt, and a page
    that only reads the session keeps it so: the browser (or a client
    replaying its old cookie at will) sends it with each request. One
    WARNING per record, as the docs say (the others at DEBUG), not one per
    request for as long as the cookie lives."""
    target = TARGETS[kind](tmp_path, request)
    before = SessionMiddleware(app, store=target.store, serializer="pickle")
    cookies = [call(before, "/write", str(n))[1] for n in (1, 2)]
    assert None not in cookies
    after = SessionMiddleware(app, store=target.store)  # json from now on
    caplog.set_level(logging.DEBUG, logger="wsgisession.session_record")
    warnings()
    for _ in range(20):
        assert call(after, "/read", cookie=cookies[0])[2] == "{}"
    assert len(warnings()) == 1
    assert call(after, "/read", cookie=cookies[1])[2] == "{}"  # another record
    assert len(warnings()) == 1
    status, _cookie, body = call(after, "/write", "7", cookie=cookies[0])
    assert status.startswith("200") and body == '{"n": 7}'
    assert call(after, "/read", cookie=cookies[0])[2] == '{"n": 7}'
    assert warnings() == []


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_listing_a_user_with_a_record_of_another_serializer_warns_once(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    warnings: Callable[[], list[str]],
) -> None:
    """A "your devices" page lists the user's sessions on every view: a
    record none can read any more is one WARNING, not one per view."""
    target = TARGETS[kind](tmp_path, request)
    before = SessionMiddleware(app, store=target.store, serializer="pickle")
    session = before.open_session()
    session["n"] = 1
    session.bind_user("alice")
    session.save()
    after = SessionMiddleware(app, store=target.store)
    warnings()
    for _ in range(10):
        assert after.user_sessions("alice") == []
    assert len(warnings()) == 1
    assert after.revoke_user_sessions("alice") == 1  # still revoked, and counted
    assert warnings() == []
