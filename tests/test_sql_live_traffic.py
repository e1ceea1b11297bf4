"""SQLStore under live traffic while its database fails (tests/sql_traffic.py).

Users count, log in and out, list and revoke sessions, with and without
``lock = true``, through the middleware over one ``SQLStore`` with its
sweeps running, while PostgreSQL or MariaDB restarts (fast, or crashed),
ends the app's connections, or refuses writes for a while. What users
see: only ``StoreUnavailable`` (or ``LockTimeout``), no raw SQLAlchemy or
driver exception, no other user's data, no lost acknowledged save, no
revoked session answering again, and every user served again within
:data:`RECOVERY` seconds of the fault's end, by the same store (no
restart of the app). Each test starts a server of its own (~6-10 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
import servers
from helpers import later
from reply_dropping_proxy import ReplyDroppingProxy
from servers import DB_PASSWORD, DatabaseServer
from sql_support import sql_url
from sql_traffic import SQLTraffic, counted_warnings
from sqlalchemy.engine import make_url
from test_lock_faults import READY_FOR_QUERY

from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore

pytestmark = pytest.mark.slow  # database servers of their own

#: MariaDB's error for KILL of a connection that has already ended.
UNKNOWN_THREAD_ID = 1094

#: Seconds of traffic before a fault, and after it before judging.
STEADY = 1.0
#: Seconds after a fault's end by which every user is served again: well
#: under the ``lock_ttl`` the locking users run with (a lock left over from
#: the fault holds its session that long).
RECOVERY = 2.0
LOCK_OPTIONS = {"lock_ttl": 30, "lock_timeout": 1.5}


@pytest.fixture
def own_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[DatabaseServer]:
    """A server of the test's own (``request.param``: ``postgresql`` or
    ``mariadb``), which it may stop and start again."""
    server = getattr(servers, request.param)(tmp_path)
    if request.param == "mariadb":  # durable commits, as deployed (the
        # fixtures' default of 0 loses the last second of saves in a crash)
        server.argv = [
            "--innodb-flush-log-at-trx-commit=1"
            if arg.startswith("--innodb-flush-log-at-trx-commit")
            else arg
            for arg in server.argv
        ]
    server.start()
    if request.param == "mariadb":
        servers.mariadb_setup(server)
    yield server
    server.remove()


def _restart(crash: bool) -> Callable[[DatabaseServer], None]:
    def restart(server: DatabaseServer) -> None:
        server.stop(crash=crash)
        time.sleep(0.3)
        server.start()

    return restart


def _end_connections(server: DatabaseServer) -> None:
    """Every connection of the app ends (pg_terminate_backend, KILL CONNECTION)."""
    if server.name == "postgres":
        with _pg_admin(server) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        return
    root = servers.mariadb_root(server)
    try:
        with root.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist"
                " WHERE user = 'wsgisession'"
            )
            ended = 0
            for (backend,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL CONNECTION {int(backend)}")
                except pymysql.err.OperationalError as error:
                    # The pool closed it between the listing and the kill.
                    if error.args[0] != UNKNOWN_THREAD_ID:
                        raise
                else:
                    ended += 1
            assert ended, "no connection of the app was open to end"
    finally:
        root.close()


def _pg_admin(server: DatabaseServer) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        password=DB_PASSWORD,
        dbname="postgres",
        autocommit=True,
    )


def _read_only_for_a_while(server: DatabaseServer) -> None:
    """PostgreSQL refuses every write for two seconds (as a standby would)."""
    with _pg_admin(server) as conn:
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(2)
    with _pg_admin(server) as conn:
        conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")


FAULTS = {
    "restart": _restart(crash=False),
    "crash": _restart(crash=True),
    "connections-ended": _end_connections,
    "read-only": _read_only_for_a_while,
}


def _expiring_soon(store: SQLStore) -> str:
    """The key of a new record that expires in 0.2 s, made as soon as the
    database takes it (a PostgreSQL backend reads its configuration again
    after its next statement: the first may still be refused)."""
    key, deadline = generate_key(), time.monotonic() + RECOVERY
    while True:
        try:
            store.create(key, b"x", time.time() + 0.2)
            return key
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


#: What each server is put through (MariaDB has no read-only switch that
#: refuses its root-less user's writes as PostgreSQL's does).
CASES = [("postgresql", fault) for fault in FAULTS] + [
    ("mariadb", fault) for fault in FAULTS if fault != "read-only"
]
BOTH = pytest.mark.parametrize("own_server", ["postgresql", "mariadb"], indirect=True)


@pytest.mark.parametrize(("own_server", "fault"), CASES, indirect=["own_server"])
def test_users_are_served_again_soon_after_a_fault(
    own_server: DatabaseServer, fault: str
) -> None:
    store = SQLStore(own_server.url, timeout=2.0)
    store.create_tables()
    traffic = SQLTraffic(store, lock_options=LOCK_OPTIONS)
    with counted_warnings() as warnings:
        traffic.start()
        try:
            time.sleep(STEADY)
            FAULTS[fault](own_server)
            ended = traffic.now()
            expired = _expiring_soon(store)  # the sweeps still run after the fault
            time.sleep(RECOVERY + STEADY)
        finally:
            stuck = traffic.stop()
    assert not stuck, stuck
    assert traffic.of_kind("raw") == [], traffic.summary()
    assert traffic.of_kind("wrong") == [], traffic.summary()
    recovered = traffic.recovered_at(ended) - ended
    assert recovered < RECOVERY, (recovered, traffic.failed_after(ended))
    assert traffic.longest() < 2.0 + LOCK_OPTIONS["lock_timeout"] + 1.0
    assert store.load(expired) is None and store.exists(expired) is False
    assert store.sweep_expired(100) == 0, "the sweeps stopped after the fault"
    assert len(warnings) < 20, [r.getMessage() for r in warnings]
    store.close()


@BOTH
def test_a_lock_whose_release_failed_does_not_hold_its_session(
    own_server: DatabaseServer,
) -> None:
    """The database restarts as a locked request ends: its lock row stays
    (the release failed), and held the session for ``lock_ttl``; the next
    request of the session in this process deletes it by its token."""
    store, key = SQLStore(own_server.url, timeout=1.0), generate_key()
    store.create(key, b"kept", later())
    with store.lock(key, timeout=1.0, ttl=600):
        own_server.stop()  # the release meets no server
    own_server.start()
    with store.lock(key, timeout=1.0, ttl=600):  # LockTimeout here, for 600 s
        pass
    other = SQLStore(own_server.url, timeout=1.0)  # the lock is free for all
    with other.lock(key, timeout=1.0, ttl=600):
        pass
    other.close()
    store.close()


@BOTH
def test_a_lock_released_late_is_still_its_holders_own(
    own_server: DatabaseServer,
) -> None:
    """The token kept of a failed release deletes only that row: a lock
    another holder took since (past the ttl) stays held."""
    store, key = SQLStore(own_server.url, timeout=1.0), generate_key()
    store.create(key, b"kept", later())
    with store.lock(key, timeout=1.0, ttl=0.5):
        own_server.stop()
    own_server.start()
    other = SQLStore(own_server.url, timeout=1.0)
    time.sleep(0.6)  # past the ttl: another process takes it over
    with (
        other.lock(key, timeout=1.0, ttl=600),
        pytest.raises(LockTimeout),
        store.lock(key, timeout=0.3, ttl=600),
    ):
        pass
    other.close()
    store.close()


class _Gone(threading.Event):
    """A proxy's ``armed`` that marks the server gone as the proxy fires."""

    def __init__(self, gone: threading.Event) -> None:
        super().__init__()
        self.gone = gone

    def clear(self) -> None:
        self.gone.set()
        super().clear()


class _GoingProxy(ReplyDroppingProxy):
    """Loses the reply to the next INSERT into the locks table once armed,
    and from then on ends every new connection at once (the server went
    away as it committed), until ``gone`` is cleared."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.gone = threading.Event()
        super().__init__(target, (b"INSERT INTO", b"_locks"), READY_FOR_QUERY)
        self.armed = _Gone(self.gone)

    def _refused(self) -> bool:
        return self.gone.is_set()


def test_a_lock_taken_as_the_server_went_does_not_hold_its_session(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The lock row's INSERT commits, its reply is lost and the retry finds
    no server: the request gets StoreUnavailable, the row stays, and held the
    session for ``lock_ttl``; the next taking in this process deletes it."""
    url = make_url(sql_url("sql-postgresql", request, tmp_path))
    proxy = _GoingProxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    store = SQLStore(through_proxy.render_as_string(False), timeout=1.0)
    key = generate_key()
    store.load(key)  # connected, tables known
    proxy.armed.set()
    with pytest.raises(StoreUnavailable), store.lock(key, timeout=1.0, ttl=600):
        pass
    assert proxy.dropped.wait(2) and proxy.gone.is_set()
    proxy.gone.clear()  # the server is back
    with store.lock(key, timeout=1.0, ttl=600):  # LockTimeout here, for 600 s
        pass
    store.close()
    proxy.close()
