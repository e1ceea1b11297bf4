"""Users of an app on ``SQLStore`` in threads, while its database fails.

Counting users each own a bound session and count its visits (through a
middleware with ``lock = true`` for some, without for the others); churning
users log in, list their sessions, revoke one and log out, anonymous users
make fresh sessions; the middlewares sweep every second
(``cleanup_interval = 1``). Every request's outcome is recorded with its
start and end (seconds since the traffic began): served, ``StoreUnavailable``
or ``LockTimeout`` (named), or anything else (``raw``: a SQLAlchemy or
driver exception, or a ``SessionInterrupted`` no other request caused:
each user's sessions are its own), which the tests refuse. A counter below the last acknowledged
one is a lost save; a session answering with another owner's name, or a
revoked one answering with its data, is recorded as ``wrong``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import webtest

from wsgisession import SessionMiddleware
from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.stores import SQLStore

__all__ = ["Outcome", "SQLTraffic", "counted_warnings"]

#: Named failures a request may end with while the database fails.
NAMED = (StoreUnavailable, LockTimeout)


@dataclass
class Outcome:
    """One request: who made it, what, when (seconds since the start), how
    it ended (``ok``, ``named``, ``raw`` or ``wrong``) and the exception."""

    worker: str
    path: str
    began: float
    ended: float
    kind: str
    error: BaseException | None = None


class _Wrong(Exception):
    """A reply that no correct store gives (another's data, a lost save)."""


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """``/count`` counts the visits of the session; ``/login?u=``, ``/logout``,
    ``/list?u=`` (the handles listed, this session's first) and
    ``/revoke?u=&keep=`` (how many were revoked)."""
    session = environ["wsgisession"]
    middleware: SessionMiddleware = environ["sql_traffic.middleware"]
    path, query = environ["PATH_INFO"], parse_qs(environ["QUERY_STRING"])
    user = query.get("u", [""])[0]
    if path == "/count":
        session["n"] = session.get("n", 0) + 1
        body = f"{session.get('owner', '')} {session['n']}"
    elif path == "/login":
        session.bind_user(user)
        session["owner"], session["n"] = user, 0
        session.save()
        body = str(session.handle)
    elif path == "/logout":
        session.flush()
        body = ""
    elif path == "/list":
        body = " ".join(s.handle for s in middleware.user_sessions(user))
    elif path == "/revoke":
        keep = query.get("keep", [None])[0]
        body = str(middleware.revoke_user_sessions(user, keep=keep))
    else:
        body = f"{session.get('owner', '')} {session.get('n', 0)}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


class _Passing:
    """Hands the middleware to the app (listing and revoking need it)."""

    def __init__(self) -> None:
        self.middleware: SessionMiddleware | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["sql_traffic.middleware"] = self.middleware
        return _app(environ, start_response)


def _middleware(store: SQLStore, *, lock: bool, **options: Any) -> SessionMiddleware:
    passing = _Passing()
    middleware = SessionMiddleware(
        passing, store=store, lock=lock, cleanup_interval=1, **options
    )
    passing.middleware = middleware
    return middleware


@dataclass
class SQLTraffic:
    """``counters`` counting users (every other one locking), ``churners``
    logging in and out, until :meth:`stop`."""

    store: SQLStore
    counters: int = 4
    churners: int = 2
    lock_options: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.plain = _middleware(self.store, lock=False)
        self.locked = _middleware(self.store, lock=True, **self.lock_options)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._record_lock = threading.Lock()
        self.began = time.monotonic()
        self.acknowledged: dict[str, int] = {}

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        self.began = time.monotonic()
        for number in range(self.counters):
            app = self.locked if number % 2 else self.plain
            name = f"counter{number}{'-locked' if number % 2 else ''}"
            self._spawn(name, self._count_loop, app)
        for number in range(self.churners):
            self._spawn(f"churner{number}", self._churn_loop, self.plain)

    def _spawn(self, name: str, loop: Callable[..., None], app: Any) -> None:
        thread = threading.Thread(target=loop, args=(name, app), name=name)
        thread.start()
        self._threads.append(thread)

    def stop(self, join: float = 60.0) -> list[str]:
        """Stop the users; the names of those still stuck after ``join`` s."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=join)
        return [t.name for t in self._threads if t.is_alive()]

    def now(self) -> float:
        return time.monotonic() - self.began

    def _request(self, worker: str, client: webtest.TestApp, path: str) -> str | None:
        """The body of GET ``path``, or None (recorded) if it raised."""
        began = self.now()
        try:
            body = str(client.get(path).text)
        except NAMED as exc:
            self._record(Outcome(worker, path, began, self.now(), "named", exc))
            return None
        except Exception as exc:  # noqa: BLE001 - recorded: the tests refuse it
            self._record(Outcome(worker, path, began, self.now(), "raw", exc))
            return None
        self._record(Outcome(worker, path, began, self.now(), "ok"))
        return body

    def _wrong(self, worker: str, path: str, what: str) -> None:
        moment = self.now()
        self._record(Outcome(worker, path, moment, moment, "wrong", _Wrong(what)))

    def _record(self, outcome: Outcome) -> None:
        with self._record_lock:
            self.outcomes.append(outcome)

    def _count_loop(self, worker: str, app: SessionMiddleware) -> None:
        """Log in once, then count; each count must be past the last one acknowledged."""
        client = webtest.TestApp(app)
        while (
            not self._stop.is_set()
            and self._request(worker, client, f"/login?u={worker}") is None
        ):
            time.sleep(0.05)
        acknowledged = 0
        while not self._stop.is_set():
            body = self._request(worker, client, "/count")
            if body is None:
                time.sleep(0.02)
                continue
            owner, count = body.split(" ")
            if owner != worker:
                self._wrong(worker, "/count", f"owner {owner!r}, count {count}")
            elif int(count) <= acknowledged:
                self._wrong(worker, "/count", f"{count} after {acknowledged}")
            acknowledged = max(acknowledged, int(count))
            self.acknowledged[worker] = acknowledged

    def _churn_loop(self, worker: str, app: SessionMiddleware) -> None:
        """Anonymous visit, two logins, list, revoke the first, log out."""
        round_number = 0
        while not self._stop.is_set():
            round_number += 1
            if not self._churn_round(worker, app, f"{worker}-{round_number}"):
                time.sleep(0.02)

    def _churn_round(self, worker: str, app: SessionMiddleware, user: str) -> bool:
        first, second = webtest.TestApp(app), webtest.TestApp(app)
        if self._request(worker, first, "/count") is None:
            return False
        handle = self._request(worker, first, f"/login?u={user}")
        kept = self._request(worker, second, f"/login?u={user}")
        if handle is None or kept is None:
            return False
        listed = self._request(worker, second, f"/list?u={user}")
        if listed is not None and not set(listed.split()) <= {handle, kept}:
            self._wrong(worker, "/list", f"{listed!r} for {handle} and {kept}")
        revoked = self._request(worker, second, f"/revoke?u={user}&keep={kept}")
        if revoked is None:
            return False
        after = self._request(worker, first, "/peek")
        if after is not None and after != " 0":  # revoked: a fresh, empty session
            self._wrong(worker, "/peek", f"revoked session answered {after!r}")
        return self._request(worker, second, "/logout") is not None

    # -- judging ---------------------------------------------------------------

    def of_kind(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]

    def served_after(self, moment: float) -> set[str]:
        """The workers with a request served that began after ``moment``."""
        return {o.worker for o in self.outcomes if o.kind == "ok" and o.began > moment}

    def recovered_at(self, moment: float) -> float:
        """When every worker had a request served again after ``moment``:
        the end of the last of their first successes (inf: one never did)."""
        firsts: dict[str, float] = {}
        for o in sorted(self.outcomes, key=lambda o: o.began):
            if o.kind == "ok" and o.began >= moment and o.worker not in firsts:
                firsts[o.worker] = o.ended
        workers = {t.name for t in self._threads}
        if set(firsts) != workers:
            return float("inf")
        return max(firsts.values())

    def longest(self, kind: str | None = None) -> float:
        """The longest request (of ``kind``), in seconds."""
        picked = [o for o in self.outcomes if kind is None or o.kind == kind]
        return max((o.ended - o.began for o in picked), default=0.0)

    def failed_after(self, moment: float, shown: int = 10) -> list[str]:
        """The first ``shown`` failures that began after ``moment``, as text."""
        failed = [o for o in self.outcomes if o.kind != "ok" and o.began > moment]
        return [
            f"{o.worker} {o.path} at +{o.began - moment:.2f} s, "
            f"{o.ended - o.began:.2f} s: {o.error!r}"
            for o in failed[:shown]
        ]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            label = o.kind if o.error is None else f"{o.kind}:{type(o.error).__name__}"
            counts[label] = counts.get(label, 0) + 1
        return ", ".join(f"{label}={count}" for label, count in sorted(counts.items()))


@contextmanager
def counted_warnings() -> Iterator[list[logging.LogRecord]]:
    """The WARNING and higher records wsgisession logs meanwhile."""
    records: list[logging.LogRecord] = []

    class Keeping(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keeping(logging.WARNING)
    logger = logging.getLogger("wsgisession")
    level, logger.level = logger.level, logging.WARNING
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
