"""SQLStore when things go wrong around it: a damaged row, a forked worker.
Real PostgreSQL, MariaDB and SQLite. (A database restarted while the app
ran: test_store_sql.py, on a server of the test's own.)"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import later
from sql_support import sql_url

from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("expires_at", "soon"),
        ("expires_at", b"\x00\x01"),
        ("payload", "text"),
        ("payload", 2**62),  # bytes(n) of it: MemoryError, n = 2e9 took 2 GB
    ],
    ids=["text-expiry", "blob-expiry", "text-payload", "int-payload"],
)
def test_a_damaged_row_loads_as_absent(
    column: str,
    value: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SQLStore(sql_url("sql-sqlite", request, tmp_path))
    key, user_key = generate_key(), generate_key()
    store.create(key, b"{}", later())
    store.create_user_session("alice", user_key, b"{}", later())
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as conn:
        conn.execute(f"UPDATE wsgisession_sessions SET {column} = ?", (value,))
    conn.close()
    with caplog.at_level(logging.WARNING):
        assert store.load(key) is None  # ValueError / TypeError here
        assert store.exists(key) is False
        assert store.user_session_records("alice") == {}
    assert any("damaged" in r.getMessage() for r in caplog.records)
    store.close()


SERVER_KINDS = ["sql-postgresql", "sql-mariadb"]


def _alive(connection: object) -> bool:
    """Whether the parent's own driver connection still answers (no retry)."""
    try:
        cursor = connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("SELECT 1")
        cursor.fetchall()
        return True
    except Exception:  # noqa: BLE001 - any failure means it was closed under us
        return False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_close_in_a_forked_child_leaves_the_parents_connections(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A worker that closes the middleware at exit (gunicorn's worker_exit,
    an atexit hook) without having used the store: its close() must not
    end the connections of the process it was forked from."""
    store = SQLStore(sql_url(kind, request, tmp_path))
    key = generate_key()
    store.create(key, b"kept", later())
    assert store.load(key) is not None
    parent_connection = store._runner._idle[-1].connection
    assert _alive(parent_connection)
    pid = os.fork()
    if pid == 0:  # the child closes its store, as a worker does at exit
        try:
            store.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _alive(parent_connection), (
        "the child's close() ended the parent's connection"
    )
    store.close()


SCRIPT = textwrap.dedent(
    """
    import os, sys
    from wsgisession.keys import generate_key
    from wsgisession.stores import SQLStore
    from wsgisession.stores.base import now

    store = SQLStore(sys.argv[1])
    key = generate_key()
    store.create(key, b"kept", now() + 600)
    connection = store._runner._idle[-1].connection

    def alive():
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            return True
        except Exception:
            return False

    assert alive()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # a child that never used the store ends normally
    os.waitpid(pid, 0)
    print("ALIVE" if alive() else "KILLED")
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_forked_child_that_exits_leaves_the_parents_connections(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The store's finalizer runs at the child's interpreter exit too."""
    url = sql_url(kind, request, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ALIVE", (result.stdout, result.stderr[-2000:])
