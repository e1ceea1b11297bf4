"""Does a session bound to a user (``bind_user``) cost more per request? It should not.

Usage (from the repository root)::

    python benchmarks/bound_sessions.py [--stores memory file sqlite] [-n 500] [--rounds 15]
        [--redis redis://127.0.0.1:6379/0] [--memcached 127.0.0.1:11211]
        [--sql postgresql+psycopg://user:password@127.0.0.1/db]

The server stores run only when their server is given (``--redis`` etc.):
a bound session costs memcached one extra ``get`` (its index check), and
nothing on the others.

For each store, times requests that read and that write one session bound
to a user and one not bound, interleaved round by round (A, B, B, A, ...)
so that a busy machine slows both alike, and prints the fastest round's microseconds
per request and the bound/unbound ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsgisession import SessionMiddleware
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    SQLStore,
)
from wsgisession.stores.base import Store

STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp: MemoryStore(),
    "file": lambda tmp: FileStore(tmp / "sessions"),
    "sqlite": lambda tmp: SQLiteStore(tmp / "sessions.sqlite3"),
}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """``/write`` adds one to a counter; ``/read`` reads it."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] == "/write":
        session["n"] = session.get("n", 0) + 1
    else:
        session.get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def requester(middleware: SessionMiddleware, path: str, key: str) -> Callable[[], None]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_COOKIE": f"sessionid={key}",
    }

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        return None

    def request() -> None:
        b"".join(middleware(dict(environ), start_response))

    return request


def session_key(middleware: SessionMiddleware, user: str | None) -> str:
    session = middleware.open_session()
    session["n"] = 0
    if user is None:
        session.save()
    else:
        session.bind_user(user)
    assert session.session_key is not None
    return session.session_key


def per_request(request: Callable[[], None], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        request()
    return (time.process_time() - start) / count * 1e6


def measure(kind: str, count: int, rounds: int) -> dict[str, float]:
    """The fastest µs per request (of the rounds) of each (workload, bound?) on the store ``kind``."""
    with tempfile.TemporaryDirectory(prefix="wsgisession-bound-") as tmp:
        middleware = SessionMiddleware(app, STORES[kind](Path(tmp)))
        keys = {"unbound": session_key(middleware, None)}
        keys["bound"] = session_key(middleware, "alice")
        cases = {
            f"{path} {state}": requester(middleware, "/" + path, keys[state])
            for path in ("read", "write")
            for state in ("unbound", "bound")
        }
        for request in cases.values():  # warm up
            per_request(request, count // 5 + 1)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(rounds):
            order = list(cases) if number % 2 else list(reversed(cases))
            for name in order:
                times[name].append(per_request(cases[name], count))
        middleware.close()
    return {name: min(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stores", nargs="+", choices=list(STORES), default=list(STORES)
    )
    parser.add_argument("-n", type=int, default=500, help="requests per timing")
    parser.add_argument("--rounds", type=int, default=15, help="timings per case")
    parser.add_argument("--redis", help="also the Redis store, on this URL")
    parser.add_argument("--memcached", help="also memcached, on these servers")
    parser.add_argument("--sql", help="also the SQL store, on this database URL")
    args = parser.parse_args(argv)
    servers: dict[str, Callable[[Path], Store]] = {}
    if args.redis:
        servers["redis"] = lambda tmp: RedisStore(args.redis)
    if args.memcached:
        servers["memcached"] = lambda tmp: MemcachedStore(args.memcached)
    if args.sql:
        servers["sql"] = lambda tmp: SQLStore(args.sql)
    STORES.update(servers)
    args.stores += list(servers)
    print(
        f"{'store':<10}{'workload':<10}{'unbound µs':>12}{'bound µs':>12}{'ratio':>8}"
    )
    for kind in args.stores:
        medians = measure(kind, args.n, args.rounds)
        for workload in ("read", "write"):
            unbound = medians[f"{workload} unbound"]
            bound = medians[f"{workload} bound"]
            print(
                f"{kind:<10}{workload:<10}{unbound:>12.1f}{bound:>12.1f}"
                f"{bound / unbound:>8.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
