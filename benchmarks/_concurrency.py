"""The concurrency run: 4 threads at once, requests per second and lost updates.

Four workloads, for wsgisession and Beaker on every store both support:

* *own sessions*: each thread has its own session and increments its own
  counter in it;
* *one session*: the 4 threads send the same session cookie, each
  incrementing its own key of that session;
* *one counter*: the 4 threads send the same session cookie and all
  increment the same key, as the independent harness's lost-update probe
  does;
* *one counter, lock = true*: the same, wsgisession with ``lock = true``
  (Beaker has no such option: its row is the one of *one counter*).

Every request increments exactly one counter, so after the run each key
must hold the number of requests that returned 200 for it; what is missing
is a lost update. wsgisession merges concurrent saves key by key: on
*own sessions* and *one session* it must lose none (a loss, or a failed
request, makes its row INVALID). Two requests that both read and rewrite
the same key (*one counter*) are a conflict no merge can settle; without a
lock the later save wins, as in Django, and the losses are reported, not
judged. With ``lock = true`` a session's requests run one at a time, and
*one counter, lock = true* must lose none. Beaker saves the whole session,
so the last writer wins and the others' changes are lost. One session
shared by concurrent requests means nothing for a client-side store (each
response carries the whole session; the client keeps one of them), so the
shared-session workloads are not run on the cookie store.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _cases import Client, prime
from _systems import BUILDERS, COOKIE_NAMES, Ctx, Skip, wsgisession_locked_app
from _timing import RoundFigures
from _wsgi import WSGIApp, call

THREADS = 4
ONE_COUNTER, LOCKED = "one counter", "one counter, lock = true"
WORKLOADS = ("own sessions", "one session", ONE_COUNTER, LOCKED)
SHARED = {"one session", ONE_COUNTER, LOCKED}  # one session cookie for all threads
#: Workloads whose losses are reported, not judged (see the module's docstring).
UNJUDGED = {ONE_COUNTER}
CLIENT_SIDE = {"cookie"}  # stores where "one session" is not run
NOT_RUN = (
    "not run: a client-side store keeps the session in the cookie, so each "
    "concurrent response carries its own copy and the client keeps one of them"
)
JOIN_TIMEOUT = 120.0  # seconds a round may take before the run gives up on it
MAX_PER_THREAD = 20_000


@dataclass
class ConcurrentRun(RoundFigures):
    """One system on one store running one workload with THREADS threads."""

    system: str
    kind: str
    workload: str
    clients: list[Client] = field(default_factory=list)
    per_thread: int = 0  # requests per thread in a timed round
    samples: list[float] = field(default_factory=list)  # requests/s per round
    succeeded: list[int] = field(default_factory=lambda: [0] * THREADS)
    errors: int = 0
    first_error: str | None = None
    lost: int | None = None  # successful increments missing from the store
    invalid: str | None = None  # why the row failed (wsgisession, or the harness)

    def as_json(self) -> dict[str, object]:
        """The run's raw figures for the JSON file."""
        return {
            "part": "concurrency",
            "system": self.system,
            "store": self.kind,
            "workload": self.workload,
            "threads": THREADS,
            "requests_per_thread": self.per_thread,
            "samples_rps": self.samples,
            "succeeded": sum(self.succeeded),
            "errors": self.errors,
            "first_error": self.first_error,
            "lost_updates": self.lost,
            "invalid": self.invalid,
        }

    def __repr__(self) -> str:
        return (
            f"<ConcurrentRun {self.system}/{self.kind}/{self.workload} "
            f"median={self.median} lost={self.lost}>"
        )


def _clients(app: WSGIApp, cookie_name: str, workload: str) -> list[Client]:
    """THREADS clients on ``/incr``, client i incrementing key ``t{i}``, or
    all of them key ``counter`` (*one counter*)."""
    shared = prime(app, cookie_name) if workload in SHARED else None
    clients = []
    for index in range(THREADS):
        value = shared or prime(app, cookie_name)
        client = Client(app, "/incr", cookie_name, value, keep=True)
        one_counter = workload in (ONE_COUNTER, LOCKED)
        client.environ["QUERY_STRING"] = "counter" if one_counter else f"t{index}"
        clients.append(client)
    return clients


def _send(
    run: ConcurrentRun, index: int, count: int, barrier: threading.Barrier
) -> None:
    """One thread's requests; counts successes, records the first failure."""
    client = run.clients[index]
    barrier.wait()
    for _ in range(count):
        try:
            response = client()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            _failed(run, f"{type(exc).__name__}: {exc}")
            continue
        if response.status.startswith("200"):
            run.succeeded[index] += 1
        else:
            _failed(run, f"HTTP {response.status}")


_ERROR_LOCK = threading.Lock()


def _failed(run: ConcurrentRun, reason: str) -> None:
    with _ERROR_LOCK:
        run.errors += 1
        run.first_error = run.first_error or reason[:200]


def _round(run: ConcurrentRun, count: int) -> float:
    """THREADS threads send ``count`` requests each; return requests/second."""
    barrier = threading.Barrier(THREADS + 1)
    threads = [
        threading.Thread(target=_send, args=(run, i, count, barrier), daemon=True)
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    elapsed = time.perf_counter() - started
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"a round did not finish in {JOIN_TIMEOUT:g} s")
    return THREADS * count / elapsed


def _calibrate(run: ConcurrentRun, warmup: int, target: float) -> None:
    """Warm up with ``warmup`` requests per thread; size a round to ``target`` s."""
    rate = _round(run, warmup)
    run.per_thread = max(3, min(MAX_PER_THREAD, int(target * rate / THREADS)))


def _count_lost(run: ConcurrentRun, app: WSGIApp) -> None:
    """Read every counter back; lost = successful increments missing."""
    if run.workload in (ONE_COUNTER, LOCKED):  # one key, all threads' increments
        run.lost = sum(run.succeeded) - _count(app, run.clients[0])
        return
    lost = 0
    for index, client in enumerate(run.clients):
        lost += run.succeeded[index] - _count(app, client)
    run.lost = lost


def _count(app: WSGIApp, client: Client) -> int:
    response = call(app, dict(client.environ, PATH_INFO="/count"))
    assert response.status.startswith("200"), f"read-back: HTTP {response.status}"
    return int(response.body)


def judge(run: ConcurrentRun) -> None:
    """wsgisession must lose nothing and fail no request (*one counter*
    without a lock: reported); Beaker is reported."""
    if run.system != "wsgisession" or run.invalid or run.workload in UNJUDGED:
        return
    if run.lost:
        run.invalid = f"INVALID: {run.lost} lost updates"
    elif run.errors:
        run.invalid = f"INVALID: {run.errors} failed requests ({run.first_error})"


def build_runs(
    ctx: Ctx, kinds: list[str], skipped: dict[str, str]
) -> list[tuple[ConcurrentRun, WSGIApp]]:
    """Every system/store/workload to run, with its app; skips are recorded."""
    runs = []
    for kind in kinds:
        for system, build in BUILDERS.items():
            try:
                app, _store = build(kind, ctx)
            except Skip as exc:
                skipped[f"{system}/{kind} (concurrency)"] = str(exc)
                continue
            for workload in WORKLOADS:
                if workload in SHARED and kind in CLIENT_SIDE:
                    continue
                if workload == LOCKED and system != "wsgisession":
                    continue  # Beaker has no request lock
                run, run_app = ConcurrentRun(system, kind, workload), app
                try:
                    if workload == LOCKED:
                        run_app, _store = wsgisession_locked_app(kind, ctx)
                    run.clients = _clients(run_app, COOKIE_NAMES[system], workload)
                except Exception as exc:  # noqa: BLE001 - the row shows it
                    run.invalid = f"INVALID before timing: {type(exc).__name__}: {exc}"
                runs.append((run, run_app))
    return runs


def concurrency_run(
    ctx: Ctx,
    kinds: list[str],
    timing: dict[str, float],
    skipped: dict[str, str],
    progress: Callable[[str], None],
    sync: bool = True,
) -> list[ConcurrentRun]:
    """Time every run in interleaved rounds, then count its lost updates."""
    runs = build_runs(ctx, kinds, skipped)
    live = [(run, app) for run, app in runs if run.invalid is None]
    target = 2 * timing["target"]  # seconds per round and run
    warmup = 2 if timing["target"] < 0.1 else 10
    progress(f"concurrency: {len(live)} runs of {THREADS} threads; calibrating")
    for run, _app in live:
        _guarded(run, _calibrate, run, warmup, target)
    rounds = int(timing["rounds"])
    for number in range(rounds):
        started = time.perf_counter()
        order = live if number % 2 == 0 else live[::-1]
        for run, _app in order:
            if run.invalid is None:
                if sync:
                    os.sync()
                gc.collect()
                _guarded(run, _timed_round, run)
        spent = time.perf_counter() - started
        progress(f"concurrency round {number + 1}/{rounds}: {spent:.1f} s")
    for run, app in live:
        if run.invalid is None:
            _guarded(run, _count_lost, run, app)
        judge(run)
    return [run for run, _app in runs]


def _timed_round(run: ConcurrentRun) -> None:
    run.samples.append(_round(run, run.per_thread))


def _guarded(run: ConcurrentRun, step: Callable[..., Any], *args: Any) -> None:
    """Run a harness step; a failure marks the row instead of ending the run."""
    try:
        step(*args)
    except Exception as exc:  # noqa: BLE001 - reported as the row's error
        run.invalid = f"INVALID: {type(exc).__name__}: {exc}"[:300]
