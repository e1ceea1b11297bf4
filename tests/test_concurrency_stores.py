"""Concurrent requests on one session, on the server-side stores that
test_concurrency.py leaves out (Redis, Redis Cluster, memcached, a pool of
three memcached servers, SQL on PostgreSQL, MariaDB and SQLite): threads
each changing a key of their own lose nothing (every key is checked at the
end), and with ``lock = true`` threads adding to one key count every
request (they ran one at a time)."""

from __future__ import annotations

import threading

from helpers import (
    call,
    increment_app,
    new_session,
    store_fixture,
)

from wsgisession import SessionMiddleware
from wsgisession.stores.base import Store

THREADS = 6
REQUESTS = 15
KINDS = [
    "redis",
    "memcached",
    "sql-postgresql",
    "sql-mariadb",
    "sql-sqlite",
    "redis-cluster",
    "memcached-pool",
]


store = store_fixture(KINDS)


def run_threads(app: SessionMiddleware, cookie: str, key_of: list[str]) -> None:
    """One thread per entry of ``key_of``, each making REQUESTS requests that
    add 1 to its key, all started at once."""
    errors: list[Exception] = []
    start = threading.Barrier(len(key_of))

    def worker(key: str) -> None:
        try:
            start.wait()
            for _ in range(REQUESTS):
                call(app, key, cookie)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(key,)) for key in key_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_threads_changing_keys_of_their_own_lose_nothing(store: Store) -> None:
    app = SessionMiddleware(increment_app, store=store)
    cookie = new_session(app)
    names = [f"t{index}" for index in range(THREADS)]
    run_threads(app, cookie, names)
    session = app.open_session(cookie.split("=", 1)[1])
    assert dict(session) == {"counter": 1, **dict.fromkeys(names, REQUESTS)}


def test_locked_threads_adding_to_one_key_count_every_request(store: Store) -> None:
    app = SessionMiddleware(increment_app, store=store, lock=True, lock_timeout=60)
    cookie = new_session(app)
    run_threads(app, cookie, ["shared"] * THREADS)
    session = app.open_session(cookie.split("=", 1)[1])
    assert dict(session) == {"counter": 1, "shared": THREADS * REQUESTS}
