"""Workers forked from C, as uWSGI forks them (no ``lazy-apps``).

uWSGI's master imports the app and then calls ``fork()`` from C: Python's
``os.register_at_fork`` hooks never run in its workers (unless
``py-call-osafterfork`` is set). A store the master used (a warm-up
request, a health check) must still give each worker connections of its
own. ``fork()`` is called here through ``ctypes`` with the GIL held, as
uWSGI calls it; the parent and two such children then update one session
at once.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
from helpers import build_store, later, payload_of, store_argument
from sql_support import SQL_KINDS

from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore
from wsgisession.stores.base import Merge

#: ``fork()`` of the C library, without Python's at-fork hooks.
fork_from_c = ctypes.PyDLL(None).fork
#: Stores that several processes share, each on its real server.
SHARED = ["file", "sqlite", "memcached", "redis", "memcached-pool", "redis-cluster"]
UPDATES = 200


def appending(mark: bytes) -> Merge:
    return lambda current: ((current or b"") + mark, later())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("kind", SHARED + SQL_KINDS)
@pytest.mark.slow  # forked processes; a shared socket waits for its timeout
def test_workers_forked_from_c_use_connections_of_their_own(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    argument = store_argument(kind, request, tmp_path)
    if kind == "sql-sqlite":
        # Three processes saving back to back: SQLite's busy waiters are not
        # served in turn, and on a loaded machine one waited past the 5 s
        # default (CI, "database is locked"; docs/stores.rst says so). This
        # test is about connections after fork(), not that wait.
        store = SQLStore(argument, timeout=60)
    else:
        store = build_store(kind, argument)
    key = generate_key()
    store.create(key, b"", later())
    assert store.load(key) is not None  # the master has a connection open now
    start, go = os.pipe()
    children = []
    for mark in (b"a", b"b"):
        pid = fork_from_c()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.read(start, 1)  # start together so that the updates overlap
                for _ in range(UPDATES):
                    store.update(key, appending(mark), store.load(key))
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    os.write(go, b"go")
    for _ in range(UPDATES):
        store.update(key, appending(b"p"), store.load(key))
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    os.close(start)
    os.close(go)
    assert codes == [0, 0], "a worker failed: see its traceback above"
    payload = payload_of(store, key)
    assert sorted(payload.decode()) == sorted("abp" * UPDATES)
    store.close()
