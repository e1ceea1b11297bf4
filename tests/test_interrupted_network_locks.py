"""With ``lock = true`` on the Redis, memcached and SQL (PostgreSQL) stores,
an interrupt anywhere in a request's path through wsgisession leaves no
lock held, no pooled connection taken and no lock the process thinks it
still holds.

Their request locks are network commands on pooled connections, taken and
released through :mod:`wsgisession.request_locks` (and, for a re-save the
app did not ask for, :mod:`wsgisession.idle_loads`). Each point of
wsgisession's code in one request gets an interrupt in turn (see
interrupting.py and test_interrupted_locked_requests.py, the same sweep on
the memory, file and SQLite stores). After each: the middleware's
``release_lock()``, then another client (another store on the same server:
another process) must take the lock at once, the pool must have every
connection back, the store must keep no token of an unreleased lock, and
a request of this thread must wait for that other client's lock rather
than take it for one an outer request of its own holds. A second sweep
interrupts one taking and release of the lock at every point of any code,
the client library's and its pool's included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from interrupting import (
    Interrupt,
    interrupted_on,
    request_interrupted_at,
)
from sql_support import sql_url

from wsgisession import SessionMiddleware
from wsgisession.errors import LockTimeout
from wsgisession.request_locks import take_request_lock
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore, RedisStore, SQLStore
from wsgisession.stores._redis_clients import POOL_SIZE
from wsgisession.stores._sqlslots import counts
from wsgisession.stores.base import Store

#: What the app does with its session: ``untouched`` leaves it to the
#: middleware's own re-save (``save_every_request``), whose load only tries
#: the lock (see idle_loads.py).
ACTIONS: dict[str, Callable[[Session], object]] = {
    "read": lambda session: session.get("n"),
    "write": lambda session: session.__setitem__("n", session.get("n", 0) + 1),
    "untouched": lambda session: None,
}

KINDS = ("redis", "memcached", "sql-postgresql")


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of ``kind`` on its test server; each call another client."""
    if kind == "redis":
        return RedisStore(request.getfixturevalue("clean_redis").url)
    if kind == "memcached":
        return MemcachedStore([request.getfixturevalue("clean_memcached").address])
    if not hasattr(request.node, "sql_url"):  # the tables emptied once
        request.node.sql_url = sql_url(kind, request, tmp_path)
    return SQLStore(request.node.sql_url)


def connections_in_use(store: Store) -> int:
    """Connections the store's pool has handed out and not had back."""
    if isinstance(store, RedisStore):
        pool: Any = store._client.connection_pool
        return POOL_SIZE - int(pool.pool.qsize())
    if isinstance(store, MemcachedStore):
        return sum(
            server._slots.made - len(server._idle()) for server in store._servers
        )
    assert isinstance(store, SQLStore)
    runner: Any = store._runner
    return sum(1 for ref in runner._slots if counts(ref)) - len(runner._idle)


def left_behind(store: Store, other_client: Store, key: str) -> list[str]:
    """What an interrupt (and the release after it) left of the session's
    lock: nothing, when another client takes it at once, a request of this
    thread then waits for that client's lock (it does not take it for one
    an outer request of its own holds), the pool has every connection back,
    and the store keeps no token of an unreleased lock."""
    outcome: list[str] = []
    kept: Any = store._unreleased  # type: ignore[attr-defined]
    if len(kept):  # looked at first: the next taking forgets them
        outcome.append(f"{len(kept)} unreleased tokens kept")
    try:  # here: the holders of this thread count, not a checking thread's
        with other_client.lock(key, 0.3, 60):
            try:
                take_request_lock(store, key, 0.05, 60).__exit__(None, None, None)
                outcome.append("treated as held by this thread")
            except LockTimeout:
                pass
    except LockTimeout:
        outcome.append("left locked")
    in_use = connections_in_use(store)
    if in_use:
        outcome.append(f"{in_use} connections not back in the pool")
    return outcome


@pytest.fixture(params=KINDS)
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, Store]]:
    """The middleware's store and another client's, on the same server."""
    kind = str(request.param)
    with (
        make_store(kind, request, tmp_path) as store,
        make_store(kind, request, tmp_path) as other_client,
    ):
        yield store, other_client


def sweep(
    store: Store, other_client: Store, action: str
) -> tuple[int, dict[int, list[str]]]:
    """Interrupt a request at each point of wsgisession's code in turn; the
    points swept and what each left wrong (none, when sound)."""
    serving: list[Session] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        serving.append(session)
        ACTIONS[action](session)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(
        app,
        store=store,
        lock=True,
        lock_timeout=0.3,
        cleanup_interval=0,
        save_every_request=action == "untouched",
    )
    wrong: dict[int, list[str]] = {}
    point = 0
    while True:
        point += 1
        serving.clear()
        key, fired = request_interrupted_at(middleware, point)
        if not fired:  # past the request's last point
            return point, wrong
        for interrupted in serving:
            interrupted.release_lock()
        serving.clear()
        found = left_behind(store, other_client, key)
        if found:
            wrong[point] = found


@pytest.mark.slow  # hundreds of requests and lock checks per case, on servers
@pytest.mark.usefixtures("no_collector")
@pytest.mark.parametrize("action", ACTIONS)
def test_an_interrupt_anywhere_leaves_no_network_lock_held(
    stores: tuple[Store, Store], action: str
) -> None:
    store, other_client = stores
    points, wrong = sweep(store, other_client, action)
    print(f"{type(store).__name__} {action}: {points - 1} points")
    assert points > 20  # the request's path was interrupted, point by point
    assert wrong == {}


def anywhere(frame: FrameType, event: str, arg: Any) -> bool:
    """Every point where CPython delivers an interrupt, in any module (the
    client library's and its pool's too), but a finalizer's."""
    return event in ("call", "c_return") and frame.f_code.co_name != "__del__"


def sweep_lock(store: Store, other_client: Store) -> tuple[int, dict[int, list[str]]]:
    """Interrupt one taking and release of the request lock at each point of
    any code in turn (wsgisession's, the client library's); the points swept
    and what each left wrong."""
    sweeping = [False]  # not the sweep's own code after the block

    def hit(frame: FrameType, event: str, arg: Any) -> bool:
        return sweeping[0] and anywhere(frame, event, arg)

    wrong: dict[int, list[str]] = {}
    point = 0
    while True:
        point += 1
        key = store.generate_key()
        held: list[AbstractContextManager[None]] = []  # as SessionRecord.held_lock
        with interrupted_on(hit, point) as shot:
            sweeping[0] = True
            try:
                held.append(take_request_lock(store, key, 0.3, 60))
                held.pop().__exit__(None, None, None)
            except Interrupt:
                pass
            sweeping[0] = False
        if not shot.fired:
            return point, wrong
        for lock in held:  # the middleware's release_lock()
            lock.__exit__(None, None, None)
        held.clear()
        found = left_behind(store, other_client, key)
        if found:
            wrong[point] = found


@pytest.mark.slow  # hundreds to thousands of lock takings per case, on servers
@pytest.mark.usefixtures("no_collector")
def test_an_interrupt_anywhere_in_a_lock_command_leaves_it_free(
    stores: tuple[Store, Store],
) -> None:
    store, other_client = stores
    with store.lock(store.generate_key(), 0.3, 60):  # first-use work done
        pass
    points, wrong = sweep_lock(store, other_client)
    print(f"{type(store).__name__} lock: {points - 1} points")
    assert points > 100  # the client library's code was interrupted too
    assert wrong == {}
