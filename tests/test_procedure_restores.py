"""Backups and restores of a store, as an operator makes them.

docs/stores.rst says how to back up the SQLite store (SQLite's backup, not
a copy of the database file alone, which misses the saves still in the
``-wal`` file), and docs/user_sessions.rst that a revocation is as final as
the store's durability: a store put back to a state from before the
revocation, a backup restored or a Redis restarted from a snapshot without
the append-only file, has the revoked sessions again; docs/upgrading.rst,
that a rollback to the store used before a move finds the sessions revoked
since. These tests pin what those pages say, with ``wsgisession revoke`` run
as the operator runs it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import redis
from helpers import filter_ini, get, run_cli, user_app
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore, RedisStore, SQLiteStore


def signed_in(middleware: SessionMiddleware, user: str) -> str:
    """A session of ``user`` on ``middleware``; its ``name=value`` cookie."""
    status, headers = get(middleware, f"login={user}")
    assert status.startswith("200")
    set_cookie = next(v for k, v in headers if k == "Set-Cookie")
    return set_cookie.split(";", 1)[0]


def owner_seen(middleware: SessionMiddleware, cookie: str) -> str:
    """The user id a request with ``cookie`` finds (``"None"`` if none)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_COOKIE": cookie,
    }
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    try:
        return b"".join(body).decode().split()[0]
    finally:
        getattr(body, "close", lambda: None)()


def sqlite_backup(source: Path, target: Path) -> None:
    """SQLite's online backup, as ``sqlite3 SOURCE ".backup TARGET"`` makes it."""
    live, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        live.backup(copy)
    finally:
        live.close()
        copy.close()


def test_a_copy_of_the_database_file_alone_misses_the_saves_in_its_wal(
    tmp_path: Path,
) -> None:
    database = tmp_path / "sessions.sqlite3"
    with SessionMiddleware(user_app, SQLiteStore(database)) as running:
        cookie = signed_in(running, "42")
        shutil.copy(database, tmp_path / "copied.sqlite3")
        sqlite_backup(database, tmp_path / "backed-up.sqlite3")
    with SessionMiddleware(user_app, SQLiteStore(tmp_path / "copied.sqlite3")) as m:
        assert owner_seen(m, cookie) == "None"
    with SessionMiddleware(user_app, SQLiteStore(tmp_path / "backed-up.sqlite3")) as m:
        assert owner_seen(m, cookie) == "42"


def test_a_restored_sqlite_backup_has_the_sessions_revoked_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "sessions.sqlite3"
    ini = filter_ini(
        tmp_path, "store = sqlite\nsqlite_path = %(here)s/sessions.sqlite3"
    )
    with SessionMiddleware(user_app, SQLiteStore(database)) as running:
        cookie = signed_in(running, "42")
        sqlite_backup(database, tmp_path / "backup.sqlite3")
        assert run_cli(capsys, "revoke", "--config", ini, "42")[:2] == (
            0,
            "revoked 1 session of '42'\n",
        )
        assert owner_seen(running, cookie) == "None"
    shutil.copy(tmp_path / "backup.sqlite3", database)  # restored, app stopped
    with SessionMiddleware(user_app, SQLiteStore(database)) as restarted:
        assert owner_seen(restarted, cookie) == "42"


def test_a_redis_restarted_from_an_older_snapshot_has_the_revoked_session(
    fresh_redis: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = filter_ini(tmp_path, f"store = redis\nredis_url = {fresh_redis.url}")
    with SessionMiddleware(user_app, RedisStore(fresh_redis.url)) as running:
        cookie = signed_in(running, "42")
        snapshot_taker = redis.Redis.from_url(fresh_redis.url)
        snapshot_taker.save()  # an RDB snapshot, as a save point makes one
        snapshot_taker.close()
        assert run_cli(capsys, "revoke", "--config", ini, "42")[:2] == (
            0,
            "revoked 1 session of '42'\n",
        )
        assert owner_seen(running, cookie) == "None"
        fresh_redis.stop(crash=True)
        fresh_redis.start()  # loads dump.rdb from its directory
        assert owner_seen(running, cookie) == "42"


def test_a_rollback_to_the_old_store_has_the_sessions_revoked_in_the_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_store = tmp_path / "sessions.sqlite3"
    with SessionMiddleware(user_app, SQLiteStore(old_store)) as before_the_move:
        stolen = signed_in(before_the_move, "42")
    ini = filter_ini(tmp_path, "store = file\nfile_path = %(here)s/sessions")
    with SessionMiddleware(user_app, FileStore(tmp_path / "sessions")) as moved:
        assert owner_seen(moved, stolen) == "None"
        signed_in(moved, "42")
        assert run_cli(capsys, "revoke", "--config", ini, "42")[:2] == (
            0,
            "revoked 1 session of '42'\n",
        )
    with SessionMiddleware(user_app, SQLiteStore(old_store)) as rolled_back:
        assert owner_seen(rolled_back, stolen) == "42"
