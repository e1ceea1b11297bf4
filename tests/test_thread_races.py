"""Threads of one process on the per-process state of a store, released at once.

Each test lines up real threads with a barrier, with thread switches as
frequent as CPython allows, against the real server.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from helpers import later
from servers import ServerProcess

from wsgisession.keys import generate_key
from wsgisession.stores import MemcachedStore

THREADS = 8
#: New workers forked: the race is lost within a few on the code before the fix.
FORKS = 100


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Thread switches as often as CPython allows: races show at once."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_together(
    work: Callable[[], object], threads: int = THREADS
) -> list[BaseException]:
    """``work()`` in ``threads`` threads released at once; what they raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return errors


def _first_requests_of_a_worker(store: MemcachedStore, key: str) -> int:
    """In a forked child: its threads' first loads, at once. The exit code:
    0, 1 if one used a connection the parent left in the pool, 2 if one raised."""
    (server,) = store._servers
    inherited = list(server._free)
    errors = run_together(lambda: store.load(key))
    for exc in errors:
        print(f"a thread of the worker raised {exc!r}", file=sys.stderr)
    if errors:
        return 2
    return 1 if any(client.sock is not None for client in inherited) else 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.slow  # 100 forks
@pytest.mark.usefixtures("frequent_switches")
def test_threads_of_a_new_worker_never_use_the_parents_memcached_connections(
    clean_memcached: ServerProcess,
) -> None:
    """A pre-forking server's master that used the store (a warm-up) leaves
    connections in the pool; a worker's threads, starting together, must each
    get a connection of the worker's own: one used over the parent's socket
    would read the replies of another process (another user's session)."""
    store = MemcachedStore([clean_memcached.address])
    key = generate_key()
    store.create(key, b"data", later())
    for _ in range(FORKS):
        assert not run_together(lambda: store.load(key))  # the pool fills up
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 3
            try:
                code = _first_requests_of_a_worker(store, key)
            finally:
                os._exit(code)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        assert code != 2, "a first request of the worker failed (see stderr)"
        assert code != 1, "a thread of the worker used a connection of its parent"
        assert code == 0
    store.close()
