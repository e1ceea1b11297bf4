"""SQLStore on PostgreSQL as it is deployed: behind PgBouncer (transaction and
session pooling), as a role that may not create tables, with its tables in
another schema under a name with capitals, timeouts set on the role, a
read-only replica's settings, databases that are not UTF-8, and a
PostgreSQL restart behind a pooler that stays up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import servers
from helpers import call, later, run_cli, user_app
from servers import DB_PASSWORD, DatabaseServer, ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore
from wsgisession.stores.base import now

pytestmark = pytest.mark.slow  # PostgreSQL and PgBouncer servers

#: What every URL through the pooler in transaction mode needs (docs/stores.rst).
NO_PREPARE = "?prepare_threshold=none"
USER = "Zoë Ångström 用户"


def admin(server: DatabaseServer, dbname: str = "postgres") -> psycopg.Connection:
    """An autocommit connection as ``postgres``, straight to ``server``."""
    return psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        password=DB_PASSWORD,
        dbname=dbname,
        autocommit=True,
    )


def url_of(bouncer: ServerProcess, user: str, dbname: str, query: str = "") -> str:
    """The URL logging in as ``user`` to ``dbname`` through ``bouncer``."""
    return (
        f"postgresql+psycopg://{user}:{DB_PASSWORD}@127.0.0.1:{bouncer.port}"
        f"/{dbname}{query}"
    )


def started_bouncer(
    target: DatabaseServer, workdir: Path, pool_mode: str, users: tuple[str, ...]
) -> ServerProcess:
    try:
        server = servers.pgbouncer(workdir, target, pool_mode=pool_mode, users=users)
    except servers.MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    return server


@pytest.fixture
def role(postgresql_server: DatabaseServer) -> Iterator[str]:
    """A login role of its own (password :data:`DB_PASSWORD`), with no
    privilege beyond connecting: no CREATE on any schema (PostgreSQL 15)."""
    name = "app_" + secrets.token_hex(4)
    with admin(postgresql_server) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{DB_PASSWORD}'")
    yield name
    with admin(postgresql_server) as conn:
        conn.execute(f"DROP OWNED BY {name}")
        conn.execute(f"DROP ROLE {name}")


@pytest.fixture
def bouncer(
    postgresql_server: DatabaseServer, role: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    """PgBouncer in transaction mode in front of every database of the
    test's PostgreSQL, for ``postgres`` and ``role``."""
    server = started_bouncer(postgresql_server, tmp_path, "transaction", (role,))
    yield server
    server.remove()


def sign_in_and_out(middleware: SessionMiddleware, user: str) -> None:
    """A user's day on ``middleware``: log in, save, cycle the key, list the
    sessions, log out everywhere."""
    cookie = None
    for query in (f"login={user}", "set=héllo", "cycle", "set=wörld ☃"):
        headers = call(middleware, quote(query, safe="="), cookie)
        cookie = next(v for k, v in headers if k == "Set-Cookie").split(";")[0]
    [listed] = middleware.user_sessions(user)
    assert listed.data["value"] == "wörld ☃"
    assert middleware.revoke_user_sessions(user) == 1
    assert middleware.user_sessions(user) == []


def expire_and_sweep(store: SQLStore) -> None:
    """Sessions expiring at once are swept, a step and a whole clear."""
    for _ in range(3):
        store.create(generate_key(), "déjà vu".encode(), now() + 0.2)
    time.sleep(0.3)
    assert store.sweep_expired(1) == 1
    assert store.clear_expired() == 2


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1"])
def test_a_database_that_is_not_utf8_behind_the_pooler(
    postgresql_server: DatabaseServer, bouncer: ServerProcess, encoding: str
) -> None:
    """Old clusters made with ``initdb -E SQL_ASCII`` (or LATIN1) are still
    about. On SQL_ASCII, libpq took the database's encoding, psycopg then
    hands text back as bytes, and the store's first use failed in
    SQLAlchemy's set-up with ``TypeError: cannot use a string pattern on a
    bytes-like object``: a traceback, not StoreUnavailable, on every request."""
    dbname = f"enc_{encoding.lower()}_{secrets.token_hex(3)}"
    with admin(postgresql_server) as conn:
        conn.execute(
            f"CREATE DATABASE {dbname} ENCODING '{encoding}' LC_COLLATE 'C' "
            "LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        store = SQLStore(url_of(bouncer, "postgres", dbname, NO_PREPARE))
        with SessionMiddleware(user_app, store) as middleware:
            sign_in_and_out(middleware, USER)
            expire_and_sweep(store)
    finally:
        with admin(postgresql_server) as conn:
            conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")


@pytest.fixture
def deployed(
    postgresql_server: DatabaseServer,
    role: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The table ``WebSessions`` in schema ``web_<role>``, made by ``wsgisession
    init-db`` as ``postgres``; ``role`` finds it through its search_path, may
    use it but create nothing, and runs under the timeouts DBAs set."""
    schema = f"web_{role}"
    with admin(postgresql_server) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        )
        for setting in (
            f"search_path = {schema}",
            "statement_timeout = '2s'",
            "lock_timeout = '1s'",
            "idle_in_transaction_session_timeout = '1s'",
        ):
            conn.execute(f"ALTER ROLE {role} SET {setting}")
    maker = f"postgresql+psycopg://postgres@127.0.0.1:{postgresql_server.port}"
    maker += f"/postgres?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("PGPASSWORD", DB_PASSWORD)  # the command line takes none
    status, _out, err = run_cli(
        capsys,
        "init-db",
        "--store",
        "sql",
        "--sql-url",
        maker,
        "--sql-table",
        "WebSessions",
    )
    assert status == 0, err
    yield role
    with admin(postgresql_server) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_role_without_create_through_the_pooler_in_transaction_mode(
    bouncer: ServerProcess, deployed: str
) -> None:
    """Loads, saves, locks, cycle_key, the user index and both sweeps, from
    four threads at once, through PgBouncer in transaction mode (two server
    connections for them all), as a role that can create nothing."""
    url = url_of(bouncer, deployed, "postgres", NO_PREPARE)
    store = SQLStore(url, table="WebSessions")
    with SessionMiddleware(user_app, store) as middleware:

        def day(number: int) -> None:
            sign_in_and_out(middleware, f"{USER} {number}")
            key = generate_key()
            assert store.create(key, b"x", later()) == key
            for _ in range(10):  # past psycopg's five runs before it prepares
                with store.lock(key, 2.0, 5.0):
                    store.update(key, lambda current: (current + b"y", later()), None)
            assert store.load(key).payload == b"x" + b"y" * 10  # type: ignore[union-attr]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(day, range(8)))
        expire_and_sweep(store)


def test_a_read_only_role_says_so_at_once(
    postgresql_server: DatabaseServer, bouncer: ServerProcess, role: str
) -> None:
    """A hot standby, or ``default_transaction_read_only = on``: loads work,
    every write is StoreUnavailable naming the read-only transaction, at once
    (a lock does not wait out its timeout)."""
    table = "ro_" + secrets.token_hex(4)
    key = generate_key()
    with SQLStore(postgresql_server.url, table=table) as owner:
        owner.create(key, b"kept", later())
    with admin(postgresql_server) as conn:
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table}, {table}_locks TO {role}"
        )
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    writes: dict[str, Any] = {
        "create a session": lambda s: s.create(generate_key(), b"x", later()),
        "update a session": lambda s: s.update(key, lambda c: (b"y", later()), None),
        "lock a session": lambda s: s.lock(key, 30.0, 5.0).__enter__(),
        "clear expired": lambda s: s.clear_expired(),
    }
    with SQLStore(url_of(bouncer, role, "postgres", NO_PREPARE), table=table) as store:
        assert store.load(key).payload == b"kept"  # type: ignore[union-attr]
        for action, write in writes.items():
            started = time.monotonic()
            with pytest.raises(
                StoreUnavailable, match="read-only transaction"
            ) as caught:
                write(store)
            assert action in str(caught.value)
            assert time.monotonic() - started < 2
    with admin(postgresql_server) as conn:
        conn.execute(f"DROP TABLE {table}, {table}_locks")


@pytest.fixture
def private_postgresql(tmp_path: Path) -> Iterator[DatabaseServer]:
    """A PostgreSQL of this test's own: it is restarted."""
    try:
        server = servers.postgresql(tmp_path)
    except servers.MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    yield server
    server.remove()


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
@pytest.mark.parametrize("crash", [False, True])
def test_a_postgresql_restart_behind_a_pooler_that_stays_up(
    private_postgresql: DatabaseServer, tmp_path: Path, pool_mode: str, crash: bool
) -> None:
    """Sessions load and save again as soon as PostgreSQL is back, and the
    sweep's connections too (in session mode PgBouncer closes the clients of
    the server connections it lost: the store reconnects)."""
    bouncer = started_bouncer(private_postgresql, tmp_path, pool_mode, ())
    try:
        query = NO_PREPARE if pool_mode == "transaction" else ""
        with SQLStore(url_of(bouncer, "postgres", "postgres", query)) as store:
            key = generate_key()
            store.create(key, b"kept", later())
            for _ in range(6):  # prepared, in session mode
                assert store.load(key) is not None
            store.sweep_expired(10)
            private_postgresql.stop(crash=crash)
            private_postgresql.start()
            store.update(key, lambda current: (current + b"!", later()), None)
            assert store.load(key).payload == b"kept!"  # type: ignore[union-attr]
            expire_and_sweep(store)
    finally:
        bouncer.remove()
