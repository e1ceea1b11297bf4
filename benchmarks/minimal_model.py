"""The least a server-side session middleware in Python costs on this machine.

Usage (from the repository root)::

    python benchmarks/minimal_model.py [--rounds 7]

Times, in one interleaved run, the bare app, wsgisession on the memory
store, and a model middleware of a few dozen lines that does only the
unavoidable work of the same workloads, none of the rest: it reads the
cookie, looks the record up in a dict, decodes it through the same kind of
cache wsgisession keeps, writes the record's JSON from the same kept
pieces, stores it under a thread lock and sends a fixed ``Set-Cookie``.
It has no cookie policy, expiry rules, key checks, merge of concurrent
changes, change detection of nested values, ``Vary`` or error handling.
Its session layer is a floor for the issue's µs targets: whatever this
machine's speed, a target below the model's figure cannot be met by any
middleware with wsgisession's guarantees.
"""

from __future__ import annotations

import argparse
import functools
import gc
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from _cases import Client, prime
from _wsgi import hello_app, session_app
from werkzeug.http import http_date

from wsgisession import SessionMiddleware
from wsgisession._recordtext import changed_data_text, data_text, record_text
from wsgisession.stores import MemoryStore

AGE = 1_209_600
_expires = functools.lru_cache(maxsize=4)(http_date)


class ModelSession(dict[str, Any]):
    """A dict that remembers which keys were set."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()
        self.key: str | None = None
        self.payload: bytes | None = None
        self.created = time.time()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.changed.add(key)


def model_middleware(app: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """The model: see the module's docstring for what it leaves out."""
    records: dict[str, tuple[bytes, float]] = {}
    decoded: dict[bytes, tuple[dict[str, Any], float, Any]] = {}
    lock = threading.Lock()

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        session = ModelSession()
        header = environ.get("HTTP_COOKIE")
        if header and header.startswith("sessionid="):
            record = records.get(header[10:])
            if record is not None and record[1] > time.time():
                kept = decoded.get(record[0])
                if kept is not None:
                    dict.update(session, kept[0])
                    session.created, session.payload = kept[1], record[0]
                    session.key = header[10:]
        environ["wsgisession"] = session
        held: list[Any] = []
        body = app(
            environ,
            lambda status, headers, exc_info=None: held.extend((status, headers)),
        )
        status, headers = held
        if session.changed:
            now = time.time()
            text = None
            previous = decoded.get(session.payload) if session.payload else None
            if previous is not None:
                text = changed_data_text(previous[2], session, session.changed)
            if text is None:
                text = data_text(session)
            assert text is not None
            joined = record_text(text, session.created, None, now)
            assert joined is not None
            payload = joined.encode()
            key = session.key or secrets.token_urlsafe(32)
            with lock:
                records[key] = (payload, now + AGE)
            if session.payload is not None:
                decoded.pop(session.payload, None)
            decoded[payload] = (dict(session), session.created, text)
            cookie = (
                f"sessionid={key}; Expires={_expires(int(now) + AGE)}; Max-Age={AGE}; "
                "HttpOnly; Path=/; SameSite=Lax"
            )
            headers = [*headers, ("Set-Cookie", cookie)]
        start_response(status, headers)
        return body

    return middleware


def timed(clients: dict[str, Client], rounds: int, count: int) -> dict[str, float]:
    """Fastest of ``rounds`` interleaved batches, µs per request."""
    for client in clients.values():
        for _ in range(count // 10):
            client()
    gc.collect()
    gc.freeze()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, client in clients.items():
            gc.collect()
            started = time.perf_counter()
            for _ in range(count):
                client()
            spent = (time.perf_counter() - started) / count * 1e6
            best[name] = min(best.get(name, spent), spent)
    gc.unfreeze()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=10_000, help="requests per batch")
    args = parser.parse_args(argv)
    get = session_app(lambda environ: environ["wsgisession"])
    apps = {
        "model": model_middleware(get),
        "wsgisession": SessionMiddleware(get, store=MemoryStore()),
    }
    clients = {"bare": Client(hello_app, "/untouched", "sessionid")}
    for name, app in apps.items():
        value = prime(app, "sessionid")
        clients[f"{name} read"] = Client(app, "/read", "sessionid", value, keep=True)
        clients[f"{name} write"] = Client(app, "/write", "sessionid", value, keep=True)
        clients[f"{name} new"] = Client(app, "/new", "sessionid")
    best = timed(clients, args.rounds, args.n)
    bare = best["bare"]
    print(f"bare app: {bare:.2f} µs (fastest of {args.rounds} interleaved batches)")
    print("| middleware | read | write | new |")
    print("|---|---:|---:|---:|")
    for name in apps:
        cells = [
            f"+{best[f'{name} {w}'] - bare:.1f} µs" for w in ("read", "write", "new")
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
