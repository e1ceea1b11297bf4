"""The scale run: does a request cost the same with 1,000 and 1,000,000 sessions?

For the SQLite and file stores, one store per size is filled (see
:mod:`_populate`), then *read* and *write* on a primed session, and *random
read* (each request reads a different one of the populated sessions), are
timed for every size in the same interleaved rounds. Separately,
``clear_expired()`` is timed once on a store holding 100,000 expired (by
default) and 1,000 live sessions, and must remove exactly the expired ones.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _cases import CHECKS, Client, prime
from _populate import populate
from _results import fmt, pct, ratio
from _systems import Ctx, wsgisession_store
from _targets import SCALE_LIMIT, Target, target_table
from _timing import Case, run_rounds
from _wsgi import PRIME_DATA, READ_KEY, Response, call, make_environ, session_app

SCALE_KINDS = ("sqlite", "file")
LIFETIME = 14 * 24 * 3600.0
LIVE = 1_000
WORKLOADS = ("read", "write", "random read")


class RandomReader:
    """Each call reads the session of the next id of a sample, round robin."""

    def __init__(self, app: Any, cookie_name: str, ids: list[str]) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self._environs = itertools.cycle(
            [make_environ("/read", f"{cookie_name}={key}") for key in ids]
        )
        self.last: Response | None = None

    def __call__(self) -> Response:
        self.last = call(self.app, next(self._environs).copy())
        return self.last

    def post(self, n: int) -> None:
        assert self.last is not None and self.last.status.startswith("200")
        body = self.last.body
        assert body == PRIME_DATA[READ_KEY].encode(), f"read returned {body[:40]!r}"


@dataclass
class Filled:
    """One populated store and its timed cases."""

    kind: str
    size: int
    seconds: float
    cases: dict[str, Case]


def _fill(kind: str, size: int, ctx: Ctx) -> Filled:
    from wsgisession import SessionMiddleware

    store = wsgisession_store(kind, ctx, ctx.directory("scale", kind, str(size)))
    app = SessionMiddleware(session_app(lambda e: e["wsgisession"]), store=store)
    reader, writer = prime(app, "sessionid"), prime(app, "sessionid")
    payload = store.load(reader).payload
    started = time.perf_counter()
    sample = populate(kind, store, size - 2, payload, time.time() + LIFETIME)
    seconds = time.perf_counter() - started
    clients = {
        "read": Client(app, "/read", "sessionid", reader, keep=True),
        "write": Client(app, "/write", "sessionid", writer, keep=True),
    }
    cases = {}
    for workload, client in clients.items():
        pre, post = CHECKS[workload](client, app)
        client()
        cases[workload] = Case(f"{size:,}", kind, workload, client, pre, post)
    random_reader = RandomReader(app, "sessionid", sample)
    cases["random read"] = Case(
        f"{size:,}", kind, "random read", random_reader, post=random_reader.post
    )
    return Filled(kind, size, seconds, cases)


def _clear_expired(kind: str, ctx: Ctx, expired: int) -> list[str]:
    """Time one ``clear_expired()`` over ``expired`` dead and LIVE live records."""
    store = wsgisession_store(kind, ctx, ctx.directory("expired", kind))
    payload = b'{"v": 1, "data": {}, "created": 0, "expiry": null}'
    live = populate(kind, store, LIVE, payload, time.time() + LIFETIME)
    populate(kind, store, expired, payload, time.time() - 60)
    os.sync()
    started = time.perf_counter()
    removed = store.clear_expired()
    seconds = time.perf_counter() - started
    kept = sum(store.load(key) is not None for key in live)
    ok = removed == expired and kept == len(live)
    check = "ok" if ok else f"INVALID: removed {removed}, {kept} live kept"
    per = seconds / max(removed, 1) * 1e6
    cells = [kind, f"{expired:,}", f"{kept:,} of {LIVE:,}", f"{removed:,}"]
    cells += [f"{seconds:.2f}", fmt(per), check]
    return ["| " + " | ".join(cells) + " |"]


def scale_run(
    ctx: Ctx,
    kinds: list[str],
    sizes: list[int],
    timing: dict[str, float],
    progress: Callable[[str], None],
    expired: int = 100_000,
) -> list[str]:
    """Run the scale benchmark; return its markdown section."""
    filled = []
    for kind in kinds:
        for size in sizes:
            progress(f"scale: filling {kind} with {size:,} sessions")
            filled.append(_fill(kind, size, ctx))
            progress(f"scale: filled in {filled[-1].seconds:.1f} s")
    cases = [case for f in filled for case in f.cases.values()]
    run_rounds(
        cases,
        rounds=int(timing["rounds"]),
        warmup=timing["warmup"],
        target=timing["target"],
        progress=progress,
    )
    lines = ["## Scale: cost per request against the number of sessions", ""]
    lines += _scale_table(filled) + [""]
    lines += target_table(_scale_targets(filled, kinds, sizes)) + [""]
    lines += _random_note(filled, kinds, sizes) + [""]
    lines += ["### clear_expired()", ""]
    lines += [
        "| store | expired | live kept | removed | seconds | µs per removed | check |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind in kinds:
        progress(f"scale: clear_expired on {kind}")
        lines += _clear_expired(kind, ctx, expired)
    return [*lines, ""]


def _scale_table(filled: list[Filled]) -> list[str]:
    head = "| store | sessions | filled in s |"
    rule = "|---|---:|---:|"
    for workload in WORKLOADS:
        head += f" {workload} µs | spread |"
        rule += "---:|---:|"
    lines = [head + " check |", rule + "---|"]
    for f in filled:
        cells = [f.kind, f"{f.size:,}", f"{f.seconds:.1f}"]
        for workload in WORKLOADS:
            case = f.cases[workload]
            cells += [fmt(case.median), pct(case.spread)]
        bad = [f"{c.workload}: {c.invalid}" for c in f.cases.values() if c.invalid]
        cells.append("; ".join(bad) or "ok")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _random_note(filled: list[Filled], kinds: list[str], sizes: list[int]) -> list[str]:
    """Random reads (no target: they also measure the page cache) as a ratio."""
    by_key = {(f.kind, f.size): f.cases["random read"] for f in filled}
    small, large = min(sizes), max(sizes)
    parts = []
    for kind in kinds:
        share = ratio(by_key[(kind, large)].median, by_key[(kind, small)].median)
        parts.append(f"{kind} x{fmt(share, 2)}")
    return [
        f"Random reads (informative, no target), {large:,} vs {small:,} sessions: "
        + ", ".join(parts)
        + "."
    ]


def _scale_targets(
    filled: list[Filled], kinds: list[str], sizes: list[int]
) -> list[Target]:
    small, large = min(sizes), max(sizes)
    by_key = {(f.kind, f.size): f for f in filled}
    targets = []
    for kind in kinds:
        for workload in ("read", "write"):
            a = by_key[(kind, small)].cases[workload]
            b = by_key[(kind, large)].cases[workload]
            share = ratio(b.median, a.median) if not (a.invalid or b.invalid) else None
            name = f"{workload}: {large:,} sessions <= {SCALE_LIMIT:g} x {small:,}"
            measured = f"{fmt(b.median)} vs {fmt(a.median)} µs (x{fmt(share, 2)})"
            met = None if share is None else share <= SCALE_LIMIT
            targets.append(Target(name, kind, measured, met))
    return targets
