"""SQLiteStore's pool of connections after a step cut short, and across fork().

A pooled connection goes from one request to the next, whatever thread
runs it: what one request leaves on it (a statement still running, a lock
of the pool held at a fork) the next one inherits.
"""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import threading
import time
import weakref
from pathlib import Path

import pytest
from helpers import later

from wsgisession.stores import _sqliteconn
from wsgisession.stores.sqlite import SQLiteStore


def _interrupted_as_rows_are_read(conn: sqlite3.Connection) -> None:
    """A step cut short (as by a signal) while it reads the rows of a
    ``DELETE ... RETURNING``, as the expiry sweep does. Its cursor is a
    local of the frame, which the traceback keeps: so is the cursor of the
    sweep's list comprehension on Python 3.11 (a frame of its own)."""
    cursor = conn.execute(
        "DELETE FROM wsgisession_sessions WHERE expires_at <= ? RETURNING key",
        (time.time(),),
    )
    for _ in cursor:
        raise KeyboardInterrupt


def test_a_step_interrupted_between_rows_leaves_no_lock_to_the_next(
    tmp_path: Path,
) -> None:
    """The interrupted statement lives as long as the exception (an error
    report keeps it): put back in the pool, its connection held SQLite's
    write lock, so other writers waited out busy_timeout and failed
    ("database is locked"), and the next request's write on it, from
    another thread, stayed uncommitted."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.5)
    other = SQLiteStore(path, busy_timeout=0.5)  # another process alike
    for _ in range(5):
        store.create(store.generate_key(), b"old", time.time() - 10)
    kept: list[BaseException] = []
    try:
        store._run("sweep expired sessions", _interrupted_as_rows_are_read, True)
    except KeyboardInterrupt as exc:
        kept.append(exc)  # as an error report keeps it
    assert kept, "the step was not interrupted"

    other.create(other.generate_key(), b"other", later())  # not locked out
    key = store.generate_key()
    writer = threading.Thread(target=store.create, args=(key, b"next", later()))
    writer.start()
    writer.join(10)
    record = other.load(key)
    assert record is not None and record.payload == b"next"
    store.close()
    other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_thread_held_the_pools_guard_opens_its_own(
    tmp_path: Path,
) -> None:
    """A thread of the parent inside ``close()`` (or opening a connection)
    at the fork held the pool's guard; the child's copy of it is held
    forever, and the child's first statement waited for it: a hung worker."""
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    key = store.generate_key()
    store.create(key, b"start", later())
    holding, release = threading.Event(), threading.Event()

    def inside_close() -> None:
        with store._connections._guard:  # as close() holds it
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=inside_close)
    thread.start()
    holding.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = False
        try:
            signal.alarm(5)  # a hung child ends with SIGALRM
            record = store.load(key)
            ok = record is not None and record.payload == b"start"
        finally:
            os._exit(0 if ok else 1)
    release.set()
    thread.join(10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # -14: it hung
    store.close()


def test_a_connection_is_finalized_only_once_no_statement_can_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_Held.__del__`` closes its connection without taking its lock,
    which closing another thread's connection in the middle of a statement
    would need (the process crashes). It never has to: a statement's
    thread keeps its ``_Held`` in a frame as long as the statement runs,
    the idle list keeps the idle ones, and only the sets of open ones
    (weak) let go. Here the pool lets go of everything while a statement
    runs: its ``_Held`` is finalized once the statement is over and the
    idle list let go of it, never before, and its lock was free then."""
    gc.collect()  # other tests' connections: finalized before counting
    finalized: list[bool] = []  # for each: whether its lock was held
    finalize = _sqliteconn._Held.__del__

    def recording(held: _sqliteconn._Held) -> None:
        finalized.append(held.lock.locked())
        finalize(held)

    monkeypatch.setattr(_sqliteconn._Held, "__del__", recording)
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    inside, go = threading.Event(), threading.Event()
    counts: list[int] = []

    def step(conn: sqlite3.Connection) -> None:
        inside.set()
        assert go.wait(5)
        counts.append(
            conn.execute("SELECT count(*) FROM wsgisession_sessions").fetchone()[0]
        )

    reader = threading.Thread(target=store._connections.run, args=(step, False))
    reader.start()
    assert inside.wait(5)
    connections = store._connections
    connections._idle, connections._open = [], weakref.WeakSet()
    gc.collect()
    assert finalized == []  # the reader's frame keeps it
    go.set()
    reader.join(5)
    assert counts == [0]
    assert finalized == []  # back in the idle list
    connections._idle = []
    gc.collect()
    assert finalized == [False]
