"""Records damaged in ways a payload check cannot see, on real servers and disks.

A Redis key of another type (a hash or a list where the store writes a
string), an SQL row whose expiry is not a time (PostgreSQL's ``NaN`` and
``Infinity``), an expiry past the last date a calendar can show. Each must
end as any corrupt record does: an empty session and a WARNING, a save
that replaces it; and the operator's listing prints its lines, never a
traceback.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webtest
from servers import ServerProcess
from sql_support import sql_url

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.keys import storage_key
from wsgisession.stores import RedisStore, SQLiteStore, SQLStore

Environ = dict[str, Any]
PREFIX = "wsgisession:"  # RedisStore's default key_prefix


def counter(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """``/incr`` counts in the session; any other path shows it."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] == "/incr":
        session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(dict(session)).encode()]


def call(middleware: Any, path: str, cookie: str | None = None) -> tuple[str, str]:
    """One request; its status line and body, and the session cookie it set
    ('' if none)."""
    headers = {} if cookie is None else {"Cookie": f"sessionid={cookie}"}
    response = webtest.TestApp(middleware).get(path, headers=headers)
    values = [
        value.split(";", 1)[0].split("=", 1)[1]
        for value in response.headers.getall("Set-Cookie")
        if value.startswith("sessionid=")
    ]
    return f"{response.status} {response.text}", values[0] if values else ""


# -- Redis: a key of another type under a record's name -------------------------


@pytest.mark.parametrize("kind", ["hash", "list"])
def test_a_redis_key_of_another_type_is_a_corrupt_record(
    kind: str, clean_redis: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program's hash or list under a session's name (a shared
    database, a prefix in common) is damage, as a value of the wrong format
    is: before, every request with that cookie raised StoreUnavailable
    (WRONGTYPE), the save too, so the user got 500s until the cookie expired."""
    import redis

    store = RedisStore(clean_redis.url)
    middleware = SessionMiddleware(counter, store=store)
    _status, cookie = call(middleware, "/incr")
    client = redis.Redis(host=clean_redis.host, port=clean_redis.port)
    name = PREFIX + storage_key(cookie)
    client.delete(name)
    if kind == "hash":
        client.hset(name, "field", "value")
    else:
        client.rpush(name, "item")
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        assert call(middleware, "/read", cookie) == ("200 OK {}", "")
        assert store.exists(cookie) is False
    assert [r.getMessage() for r in caplog.records if repr(store) in r.getMessage()]
    status, new_cookie = call(middleware, "/incr", cookie)
    assert (status, bool(new_cookie)) == ('200 OK {"n": 1}', True)
    assert call(middleware, "/read", new_cookie) == ('200 OK {"n": 1}', "")
    assert client.type(name) == kind.encode()  # another program's key is left
    client.close()
    store.close()


# -- SQL: an expiry that is not a moment ------------------------------------------


@pytest.mark.slow  # a PostgreSQL server
@pytest.mark.parametrize("expiry", ["NaN", "Infinity"])
def test_a_postgresql_row_whose_expiry_is_not_a_time_is_damaged(
    expiry: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL's double precision holds NaN and Infinity, and orders NaN
    above every number: such a row passed ``expires_at > now`` and loaded
    as a live session that never ends (and no sweep removes it)."""
    from sqlalchemy import create_engine, text

    url = sql_url("sql-postgresql", request, tmp_path)
    store = SQLStore(url)
    middleware = SessionMiddleware(counter, store=store)
    _status, cookie = call(middleware, "/incr")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"UPDATE wsgisession_sessions SET expires_at = '{expiry}'"))
    admin.dispose()
    new_cookie = _loads_as_damaged(middleware, store, cookie, caplog)
    assert call(middleware, "/read", new_cookie) == ('200 OK {"n": 1}', "")
    store.close()


def test_an_sqlite_row_whose_expiry_is_infinity_is_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite keeps an Infinity (a REAL of 9e999) as PostgreSQL does: the
    SQLite store loaded it as a live session that never ends, which no
    sweep removes, where SQLStore on the same file calls it damaged."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    middleware = SessionMiddleware(counter, store=store)
    _status, cookie = call(middleware, "/incr")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE wsgisession_sessions SET expires_at = 9e999")
    conn.close()
    new_cookie = _loads_as_damaged(middleware, store, cookie, caplog)
    assert call(middleware, "/read", new_cookie) == ('200 OK {"n": 1}', "")
    store.close()


def _loads_as_damaged(
    middleware: SessionMiddleware,
    store: Any,
    cookie: str,
    caplog: pytest.LogCaptureFixture,
) -> str:
    """The session of ``cookie`` loads empty with a warning of damage, and
    the next write makes a new session: its cookie."""
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        assert call(middleware, "/read", cookie) == ("200 OK {}", "")
        assert store.exists(cookie) is False
    assert any("damaged" in r.getMessage() for r in caplog.records)
    status, new_cookie = call(middleware, "/incr", cookie)
    assert (status, bool(new_cookie)) == ('200 OK {"n": 1}', True)
    return new_cookie


# -- the operator's listing ---------------------------------------------------------


# Not Infinity: the SQLite store calls that row damaged (test above).
@pytest.mark.parametrize("expires_at", [1e300])
def test_sessions_lists_a_row_whose_expiry_no_date_can_show(
    expires_at: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited or damaged row's expiry past year 9999: ``wsgisession
    sessions`` ended in an OverflowError traceback after its header line."""
    path = tmp_path / "sessions.sqlite3"
    with SessionMiddleware(counter, SQLiteStore(path)) as middleware:
        session = middleware.open_session()
        session.bind_user("alice")
        key = session.session_key
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE wsgisession_sessions SET expires_at = ? WHERE key = ?",
            (expires_at, storage_key(key)),
        )
    conn.close()
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[filter:session]\nuse = egg:wsgisession#session\n"
        "store = sqlite\nsqlite_path = %(here)s/sessions.sqlite3\n"
    )
    status = main(["sessions", "--config", f"{ini}#session", "alice"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3 and lines[2] == "1 live session of 'alice'"
    assert lines[1].split()[-1] == "never"
