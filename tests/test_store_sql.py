"""SQLStore on PostgreSQL, MariaDB and SQLite: what it does beyond the contract.

The store protocol and the request lock are tested for every store in
test_store_contract.py and test_store_locks.py, the SQL store included.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import servers
from helpers import later, payload_of
from servers import DB_PASSWORD, DatabaseServer
from sql_support import SQL_KINDS, drop_tables, sql_url, table_names
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from wsgisession import _initdb
from wsgisession.errors import ConfigError, LockTimeout, StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import MemoryStore, SQLStore, _sqlcleanup
from wsgisession.stores.base import now


@pytest.fixture(params=SQL_KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return sql_url(request.param, request, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[SQLStore]:
    with SQLStore(url) as store:
        yield store


def fresh_table() -> str:
    return "t_" + secrets.token_hex(6)


# -- construction ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "options"),
    [
        ("not a url", {}),
        (42, {}),
        ("sqlite://", {}),
        ("sqlite:///:memory:", {}),
        ("nosuchdatabase://host/db", {}),
        ("mysql+mysqldb://user:pw@127.0.0.1/db", {}),  # driver not installed
        ("sqlite:///x.db", {"table": "bad name"}),
        ("sqlite:///x.db", {"table": "1abc"}),
        ("sqlite:///x.db", {"table": "x" * 49}),
        ("sqlite:///x.db", {"table": 5}),
        ("sqlite:///x.db", {"timeout": 0}),
        ("sqlite:///x.db", {"timeout": float("inf")}),
        ("sqlite:///x.db", {"timeout": True}),
        ("sqlite:///x.db", {"timeout": "5"}),
    ],
)
def test_bad_arguments_are_config_errors(
    argument: object, options: dict[str, object]
) -> None:
    with pytest.raises(ConfigError) as caught:
        SQLStore(argument, **options)  # type: ignore[arg-type]
    assert "pw" not in str(caught.value).replace("password", "")


def test_a_missing_driver_is_named_with_its_install_command() -> None:
    with pytest.raises(ConfigError, match="MySQLdb.*pip install PyMySQL"):
        SQLStore("mysql+mysqldb://user:pw@127.0.0.1/db")


def test_constructor_does_not_connect_and_a_down_server_is_unavailable() -> None:
    """Port 1 on loopback refuses at once: the first operation reports it."""
    store = SQLStore(f"postgresql+psycopg://app:{DB_PASSWORD}@127.0.0.1:1/db")
    assert DB_PASSWORD not in repr(store)
    assert repr(store) == (
        "SQLStore(postgresql+psycopg://app:***@127.0.0.1:1/db, "
        "table='wsgisession_sessions')"
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.load(generate_key())
    assert time.monotonic() - started < 5
    assert "could not load a session" in str(caught.value)
    assert DB_PASSWORD not in str(caught.value)
    assert DB_PASSWORD not in caught.value.store


def test_a_wrong_password_is_unavailable_without_showing_it(
    postgresql_server: DatabaseServer,
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    url = postgresql_server.url.replace(DB_PASSWORD, wrong)
    with SQLStore(url) as store, pytest.raises(StoreUnavailable) as caught:
        store.load(generate_key())
    assert "password authentication failed" in str(caught.value)
    for text_ in (str(caught.value), caught.value.store, repr(store)):
        assert wrong not in text_


def test_repr_hides_the_password_and_names_the_table(url: str) -> None:
    store = SQLStore(url, table="my_sessions")
    assert repr(store).endswith(", table='my_sessions')")
    assert DB_PASSWORD not in repr(store)


def test_a_given_engine_is_used_and_left_open(url: str) -> None:
    engine = create_engine(url)
    store = SQLStore(engine)
    key = generate_key()
    assert store.create(key, b"via engine", later()) == key
    store.close()
    with engine.connect() as conn:  # still usable
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert payload_of(SQLStore(engine), key) == b"via engine"
    engine.dispose()


def test_a_given_engine_gets_its_tables_created_and_kept(url: str) -> None:
    """On an engine in the default (transactional) mode, the CREATE TABLE
    of first use is committed, not rolled back with the connection."""
    engine = create_engine(url)
    store = SQLStore(engine, table="given_engine")
    key = generate_key()
    assert store.create(key, b"in a new table", later()) == key
    assert {"given_engine", "given_engine_locks"} <= table_names(url)
    assert payload_of(SQLStore(url, table="given_engine"), key) == b"in a new table"
    drop_tables(url, "given_engine")
    engine.dispose()


def test_close_disconnects_an_engine_the_store_built(
    postgresql_server: DatabaseServer,
) -> None:
    name = "wsgisession-close-" + secrets.token_hex(4)
    store = SQLStore(postgresql_server.url + f"?application_name={name}")
    store.create(generate_key(), b"x", later())
    count = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"
    # Autocommit: inside a transaction PostgreSQL shows one snapshot of the view.
    engine = create_engine(postgresql_server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        assert conn.execute(text(count)).scalar_one() == 1
        store.close()
        deadline = time.monotonic() + 5
        while conn.execute(text(count)).scalar_one() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert conn.execute(text(count)).scalar_one() == 0
    engine.dispose()


# -- tables ------------------------------------------------------------------------


def test_tables_are_created_on_first_use(url: str) -> None:
    table = fresh_table()
    store = SQLStore(url, table=table)
    assert table not in table_names(url)  # the constructor did not connect
    key = generate_key()
    assert store.create(key, b"first", later()) == key
    assert {table, f"{table}_locks"} <= table_names(url)
    engine = create_engine(url)
    indexes = inspect(engine).get_indexes(table)
    engine.dispose()
    assert sorted((i["name"], i["column_names"]) for i in indexes) == [
        (f"{table}_expires_at", ["expires_at"]),
        (f"{table}_user_key", ["user_key"]),
    ]
    assert payload_of(SQLStore(url, table=table), key) == b"first"
    store.close()
    drop_tables(url, table)


def test_tables_created_by_many_stores_at_once(url: str) -> None:
    """Several processes starting at once each try to create the tables."""
    table = fresh_table()
    stores = [SQLStore(url, table=table) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def first_use(store: SQLStore) -> str | None:
        barrier.wait()
        return store.create(generate_key(), b"x", later())

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        results = list(pool.map(first_use, stores))
    assert all(results)
    assert stores[0].clear_expired() == 0
    for store in stores:
        store.close()
    drop_tables(url, table)


@pytest.mark.parametrize(
    ("kind", "types"),
    [
        ("sql-postgresql", ["BYTEA", "DOUBLE PRECISION"]),
        ("sql-mariadb", ["LONGBLOB", "DOUBLE"]),
        ("sql-sqlite", ["BLOB", "DOUBLE"]),
    ],
)
def test_ddl_is_what_the_store_needs(
    kind: str, types: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The printed DDL, run by hand, makes tables the store then uses as is."""
    url, table = sql_url(kind, request, tmp_path), fresh_table()
    store = SQLStore(url, table=table)
    out = io.StringIO()
    assert _initdb.init_db(store, out, print_sql=True) == 0
    ddl = out.getvalue()
    assert table not in table_names(url)  # printing connects to nothing
    assert ddl.count("CREATE TABLE") == 2 and ddl.count("CREATE INDEX") == 2
    assert f"{table}_locks" in ddl and f"{table}_expires_at" in ddl
    assert f"{table}_user_key" in ddl and "user_key VARCHAR(64)" in ddl
    assert all(name in ddl for name in types)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in filter(str.strip, ddl.split(";")):
            conn.execute(text(statement))
    engine.dispose()
    key = generate_key()
    assert store.create(key, b"on hand-made tables", later()) == key
    assert payload_of(store, key) == b"on hand-made tables"
    store.close()
    drop_tables(url, table)


def test_init_db_creates_the_tables(url: str) -> None:
    table = fresh_table()
    store = SQLStore(url, table=table)
    out = io.StringIO()
    assert _initdb.init_db(store, out) == 0
    assert {table, f"{table}_locks"} <= table_names(url)
    assert "are in place" in out.getvalue() and DB_PASSWORD not in out.getvalue()
    store.close()
    drop_tables(url, table)


def test_init_db_refuses_other_stores() -> None:
    with pytest.raises(ConfigError, match="init-db is for store = sql"):
        _initdb.ddl(MemoryStore())


# -- records -------------------------------------------------------------------------


def test_create_never_overwrites_a_live_record_under_a_race(store: SQLStore) -> None:
    key, count = generate_key(), 8
    barrier = threading.Barrier(count)

    def create(i: int) -> str | None:
        barrier.wait()
        return store.create(key, b"writer %d" % i, later())

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(create, range(count)))
    winners = [i for i, result in enumerate(results) if result == key]
    assert len(winners) == 1 and results.count(None) == count - 1
    assert payload_of(store, key) == b"writer %d" % winners[0]


def test_requests_on_separate_pools_keep_each_others_keys(url: str) -> None:
    """Like processes: each has its own engine; every request sets its own key."""
    stores = [SQLStore(url) for _ in range(4)]
    key = generate_key()
    stores[0].create(key, b"{}", later())

    def requests(i: int) -> None:
        store = stores[i]
        for n in range(15):

            def merge(current: bytes | None, n: int = n) -> tuple[bytes, float]:
                data = json.loads(current or b"{}")
                data[f"s{i}-{n}"] = n
                return json.dumps(data).encode(), later()

            store.update(key, merge, store.load(key))

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        list(pool.map(requests, range(len(stores))))
    data = json.loads(payload_of(stores[0], key))
    assert data == {f"s{i}-{n}": n for i in range(4) for n in range(15)}
    for store in stores:
        store.close()


def test_clear_expired_deletes_in_batches_with_progress(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlcleanup, "BATCH", 10)
    live = [generate_key() for _ in range(3)]
    for key in live:
        store.create(key, b"live", later())
    for _ in range(25):
        store.create(generate_key(), b"dead", now() - 5)
    calls: list[tuple[int, int]] = []
    assert store.clear_expired(lambda done, total: calls.append((done, total))) == 25
    assert calls == [(10, 25), (20, 25), (25, 25)]
    assert all(store.load(key) is not None for key in live)
    assert store.clear_expired() == 0


def test_sweep_expired_deletes_at_most_its_limit(store: SQLStore) -> None:
    live = generate_key()
    store.create(live, b"live", later())
    for _ in range(25):
        store.create(generate_key(), b"dead", now() - 5)
    assert [store.sweep_expired(10) for _ in range(4)] == [10, 10, 5, 0]
    assert store.sweep_expired(0) == 0
    assert payload_of(store, live) == b"live"


def test_clear_expired_drops_dead_locks(store: SQLStore, url: str) -> None:
    key = generate_key()
    held = store.lock(key, 1.0, 0.05)
    held.__enter__()  # a holder that never releases
    time.sleep(0.1)
    store.clear_expired()
    engine = create_engine(url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM wsgisession_sessions_locks"))
        assert left.scalar_one() == 0
    engine.dispose()


# -- locks ---------------------------------------------------------------------------


def test_a_holder_loses_the_lock_after_its_ttl(store: SQLStore) -> None:
    """Timed from before the stale holder asked, as its ttl is: timed from
    after, a slow INSERT on a loaded machine shortened the wait below 0.3 s."""
    key, started = generate_key(), time.time()
    stale = store.lock(key, 1.0, 0.4)
    stale.__enter__()  # a holder that hangs past its ttl
    with store.lock(key, 3.0, 60.0):
        assert 0.4 <= time.time() - started < 2.5
        stale.__exit__(None, None, None)  # the old holder's release is a no-op
        with pytest.raises(LockTimeout), store.lock(key, 0.2, 60.0):
            pass  # pragma: no cover - never reached
    with store.lock(key, 0.2, 60.0):
        pass


@pytest.mark.parametrize("kind", ["sql-postgresql", "sql-mariadb"])
def test_a_deadlock_victim_is_told_from_other_errors(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two transactions that update two rows in opposite orders: the database
    rolls one back, with the driver's real deadlock error."""
    from wsgisession.stores._sqlrun import deadlocked

    engine = create_engine(sql_url(kind, request, tmp_path))
    table = fresh_table()
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (k INTEGER PRIMARY KEY, v INTEGER)"))
        conn.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
    first, second = engine.raw_connection(), engine.raw_connection()
    update = f"UPDATE {table} SET v = v + 1 WHERE k = %s"
    errors: list[BaseException] = []

    def run(
        connection: object, rows: tuple[int, int], ready: threading.Barrier
    ) -> None:
        cursor = connection.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute(update, (rows[0],))
            ready.wait()
            cursor.execute(update, (rows[1],))
            connection.commit()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the victim's error is the point
            errors.append(exc)
            connection.rollback()  # type: ignore[attr-defined]

    ready = threading.Barrier(2)
    workers = [
        threading.Thread(target=run, args=(first, (1, 2), ready)),
        threading.Thread(target=run, args=(second, (2, 1), ready)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    cursor = first.cursor()
    with pytest.raises(engine.dialect.loaded_dbapi.IntegrityError) as duplicate:
        cursor.execute(f"INSERT INTO {table} VALUES (1, 0)")
    first.rollback()
    for connection in (first, second):
        connection.close()
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    engine.dispose()
    assert len(errors) == 1, errors
    assert deadlocked(errors[0]), repr(errors[0])
    assert not deadlocked(duplicate.value), repr(duplicate.value)


# -- outages -------------------------------------------------------------------------


def _backends(url: str, name: str) -> str:
    if url.startswith("postgresql"):
        return f"SELECT pid FROM pg_stat_activity WHERE application_name = '{name}'"
    return "SELECT id FROM information_schema.processlist WHERE user = 'wsgisession'"


@pytest.mark.parametrize("kind", ["sql-postgresql", "sql-mariadb"])
def test_a_dropped_pooled_connection_is_replaced(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The server ends the store's connection: the next operation still works."""
    url, name = sql_url(kind, request, tmp_path), "drop-" + secrets.token_hex(4)
    query = "?application_name=" + name if kind == "sql-postgresql" else ""
    store, key = SQLStore(url + query), generate_key()
    store.create(key, b"before", later())
    ids = []
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        own = conn.execute(
            text(
                "SELECT CONNECTION_ID()"
                if "mysql" in url
                else "SELECT pg_backend_pid()"
            )
        ).scalar_one()
        ids = [
            i for i in conn.execute(text(_backends(url, name))).scalars() if i != own
        ]
        # The store's idle connection (on MariaDB, any other of the test user's)
        assert len(ids) >= 1
        kill = "KILL {}" if "mysql" in url else "SELECT pg_terminate_backend({})"
        for backend in ids:
            try:
                conn.execute(text(kill.format(backend)))
            except OperationalError as error:
                # MariaDB's 1094: that connection ended since the listing.
                if getattr(error.orig, "args", (None,))[0] != 1094:
                    raise
    admin.dispose()
    time.sleep(0.1)
    assert payload_of(store, key) == b"before"
    store.close()


@pytest.fixture
def private_postgresql(tmp_path: Path) -> Iterator[DatabaseServer]:
    server = servers.postgresql(tmp_path)
    server.start()
    yield server
    server.remove()


@pytest.fixture(params=["postgresql", "mariadb"])
def private_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[DatabaseServer]:
    """A server of the test's own, which it may stop and start again."""
    server = getattr(servers, request.param)(tmp_path)
    server.start()
    if request.param == "mariadb":
        servers.mariadb_setup(server)
    yield server
    server.remove()


@pytest.mark.slow  # starts and restarts its own database servers
def test_the_first_load_after_a_restart_succeeds(
    private_server: DatabaseServer,
) -> None:
    """docs/stores.rst: a connection the server dropped is replaced and the
    statement retried once. The retry took its connection from the engine's
    pool, which still held the one the last sweep used: dead too."""
    server = private_server
    store, key = SQLStore(server.url, timeout=1.0), generate_key()
    store.create(key, b"kept", later())
    store.sweep_expired(100)  # the middleware's sweeper, after a save
    assert store.load(key) is not None
    server.stop()  # a restart while no request comes in
    server.start()
    record = store.load(key)  # StoreUnavailable here: a 500 for the user
    assert record is not None and record.payload == b"kept"
    store.close()


@pytest.mark.slow
def test_a_stopped_server_is_unavailable_then_recovers(
    private_server: DatabaseServer,
) -> None:
    server = private_server
    store, key = SQLStore(server.url, timeout=1.0), generate_key()
    store.create(key, b"kept", later())
    engine = create_engine(server.url)  # a pool with three idle connections
    given = SQLStore(engine)
    assert payload_of(given, key) == b"kept"  # set up: its next use is a load
    for connection in [engine.raw_connection() for _ in range(3)]:
        connection.close()
    server.stop()
    for operation in (
        lambda: store.load(key),
        lambda: store.create(generate_key(), b"x", later()),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        assert DB_PASSWORD not in str(caught.value)
    server.start()  # returns once the server accepts logins
    assert payload_of(store, key) == b"kept"  # the dropped connection replaced
    store.update(key, lambda current: (b"after", later()), store.load(key))
    assert payload_of(store, key) == b"after"
    assert payload_of(given, key) == b"after"  # every stale connection let go
    store.close()
    engine.dispose()


@pytest.mark.slow
def test_a_hung_server_times_out(private_postgresql: DatabaseServer) -> None:
    """A postmaster that stops answering: connecting gives up after ``timeout``."""
    server = private_postgresql
    assert server.proc is not None
    store = SQLStore(server.url, timeout=1.0)
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.load(generate_key())
        assert time.monotonic() - started < 6
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    store.close()


@pytest.mark.slow  # starts PostgreSQL when the quick loop has not
def test_postgresql_connections_notice_a_dead_peer_through_tcp(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """libpq has no read timeout: the sockets the store opens carry keepalive
    probes and a TCP user timeout, so a dead host or a dropped network ends a
    statement waiting for its reply (set on the real socket, read back)."""
    import socket

    store = SQLStore(sql_url("postgresql", request, tmp_path), timeout=3.0)
    connection = store._base.raw_connection()
    try:
        fd = connection.driver_connection.pgconn.socket  # type: ignore[union-attr]
        with socket.socket(fileno=os.dup(fd)) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 3000
    finally:
        connection.close()
        store.close()


def test_a_burst_waits_for_a_connection_instead_of_opening_more(
    tmp_path: Path,
) -> None:
    """An engine the store built opens at most MAX_OPEN connections at once
    (a database server refuses past its own limit); the next waits, then
    gets StoreUnavailable once the store's timeout has passed."""
    from wsgisession.stores._sqlrun import MAX_OPEN

    store = SQLStore(f"sqlite:///{tmp_path / 'burst.sqlite3'}", timeout=0.1)
    store.create_tables()
    with contextlib.ExitStack() as held:
        for _ in range(MAX_OPEN):
            held.enter_context(store._runner.cursor())
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="busy"):
            store.load(generate_key())
        assert time.monotonic() - started >= 0.08  # it waited the timeout
    assert store.load(generate_key()) is None  # the slots came back
    store.close()
