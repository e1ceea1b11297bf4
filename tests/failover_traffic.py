"""Logged-in users reading and writing their sessions in a loop, in threads,
through the middleware over a ``RedisStore("redis+cluster://...")``, while
the cluster's masters change (tests/redis_replicas.py).

Each thread owns its users' sessions alone, so the count a visit answers is
the count the store acknowledged: a later read that finds less lost an
acknowledged save. Every failure a visit raises is recorded with the
moment, the node the session's slot belonged to at the start, and its
type: the middleware may let ``StoreUnavailable`` out, never a redis-py
exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import webtest

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.keys import storage_key
from wsgisession.session import Session

__all__ = ["Failure", "Traffic", "counter", "load_errors_while"]

PREFIX = "wsgisession:"


def counter(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Counts the visits of a session; ``/peek`` only reads the count."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] != "/peek":
        session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("n", 0)).encode()]


@dataclass
class Failure:
    """One visit that raised: when (seconds since the traffic began), the
    session's record name, and the exception."""

    at: float
    name: str
    error: BaseException


@dataclass
class Traffic:
    """Threads visiting their users' sessions until :meth:`stop`."""

    middleware: SessionMiddleware
    users: int = 6
    sessions_per_user: int = 2
    threads: int = 3
    acknowledged: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    visits: int = 0

    def __post_init__(self) -> None:
        self.keys = {f"user{u}": self._sign_in(f"user{u}") for u in range(self.users)}
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.began = time.monotonic()

    def _sign_in(self, user: str) -> list[str]:
        keys = []
        for _ in range(self.sessions_per_user):
            session: Session = self.middleware.open_session()
            session.bind_user(user)
            session["n"] = 0
            session.save()
            assert session.session_key is not None
            keys.append(session.session_key)
            self.acknowledged[session.session_key] = 0
        return keys

    def start(self) -> None:
        self.began = time.monotonic()
        every = [key for keys in self.keys.values() for key in keys]
        for i in range(self.threads):
            mine = every[i :: self.threads]
            worker = threading.Thread(target=self._visit_loop, args=(mine,))
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
            assert not worker.is_alive()

    def _visit_loop(self, keys: list[str]) -> None:
        client = webtest.TestApp(self.middleware)
        while not self._stop.is_set():
            for key in keys:
                client.set_cookie("sessionid", key)
                try:
                    count = int(client.get("/").text)
                except Exception as exc:  # noqa: BLE001 - recorded: the test judges its type
                    with self._lock:
                        self.failures.append(
                            Failure(time.monotonic() - self.began, name_of(key), exc)
                        )
                    time.sleep(0.01)
                    continue
                with self._lock:
                    self.visits += 1
                self.acknowledged[key] = count

    def raw_errors(self) -> list[Failure]:
        """Failures that were not StoreUnavailable (a redis-py exception)."""
        return [f for f in self.failures if not isinstance(f.error, StoreUnavailable)]

    def lost_saves(self) -> dict[str, tuple[int, int]]:
        """Sessions whose count now is below the last acknowledged one:
        ``{name: (acknowledged, found)}``."""
        client = webtest.TestApp(self.middleware)
        lost = {}
        for key, count in self.acknowledged.items():
            client.set_cookie("sessionid", key)
            found = int(client.get("/peek").text)
            if found < count:
                lost[name_of(key)] = (count, found)
        return lost

    def last_failure_at(self) -> float:
        """Seconds since the traffic began of the last failure (0: none)."""
        return max((f.at for f in self.failures), default=0.0)


def name_of(key: str) -> str:
    return PREFIX + storage_key(key)


def load_errors_while(
    store: Any, keys: list[str], meanwhile: Callable[[], object], seconds: float
) -> list[BaseException]:
    """What 4 threads loading ``keys`` from ``store`` in a loop raise while
    ``meanwhile`` runs again and again for ``seconds`` (a map refresh, a
    pool's disconnect): each load must find its record."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def load_in_a_loop() -> None:
        while not stop.is_set():
            for key in keys:
                try:
                    assert store.load(key) is not None
                except Exception as exc:  # noqa: BLE001 - the caller judges
                    errors.append(exc)

    loaders = [threading.Thread(target=load_in_a_loop) for _ in range(4)]
    for loader in loaders:
        loader.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            meanwhile()
    finally:
        stop.set()
        for loader in loaders:
            loader.join()
    return errors
