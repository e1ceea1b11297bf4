"""The concurrency run's section of the markdown report."""

from __future__ import annotations

from _concurrency import (
    CLIENT_SIDE,
    NOT_RUN,
    SHARED,
    THREADS,
    UNJUDGED,
    WORKLOADS,
    ConcurrentRun,
)
from _results import fmt, pct, ratio
from _systems import KINDS

METHOD = """\
{threads} threads of this process call the app at the same time, each with its
own client (cookies kept like a browser). *own sessions*: every thread has
its own session and increments its own counter; *one session*: the
{threads} threads send the same session cookie, each incrementing its own key
of that session; *one counter*: the same cookie, all threads incrementing
the same key (the independent harness's lost-update probe); *one counter,
lock = true*: the same with wsgisession's request lock on (Beaker has none:
its column is empty). req/s = all threads' requests ÷ the round's wall
time, median of {rounds} rounds of {per_thread} requests per thread
(interleaved like the main rounds; *spread* as there). Python runs one
thread at a time (the GIL); the threads overlap where the store waits
(disk, network). *lost updates* = requests that returned 200 minus the
counts read back from the store after the last round, over all keys, "of"
all successful increments. wsgisession merges concurrent saves key by key
and must lose none on *own sessions* and *one session* (the run exits with
status 1 otherwise). Two requests that both read and rewrite one key (*one
counter*) conflict in a way no merge settles: without a lock the later
save wins, as in Django, and the losses are reported, not judged; with
``lock = true`` the session's requests run one at a time and must lose
none. Beaker saves the whole session, so concurrent requests on one
session overwrite each other."""


def concurrency_section(runs: list[ConcurrentRun]) -> list[str]:
    """The section: method, one row per store and workload, the cookie note."""
    if not runs:
        return []
    by_key = {(r.system, r.kind, r.workload): r for r in runs}
    timed = [r for r in runs if r.samples]
    per_thread = sorted({r.per_thread for r in timed}) or [0]
    span = f"{per_thread[0]:,}-{per_thread[-1]:,}".removesuffix(f"-{per_thread[0]:,}")
    rounds = max((len(r.samples) for r in runs), default=0)
    lines = [f"## Under concurrency ({THREADS} threads)", ""]
    lines += [METHOD.format(threads=THREADS, rounds=rounds, per_thread=span), ""]
    lines += [
        (
            "| store | workload | wsgisession req/s | spread | Beaker req/s | spread "
            "| ×Beaker | lost updates, wsgisession | lost updates, Beaker | check |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    kinds = [k for k in KINDS if any(r.kind == k for r in runs)]
    kinds += sorted({r.kind for r in runs} - set(kinds))
    for kind in kinds:
        for workload in WORKLOADS:
            ours = by_key.get(("wsgisession", kind, workload))
            theirs = by_key.get(("beaker", kind, workload))
            if workload in SHARED and kind in CLIENT_SIDE:
                lines.append(f"| {kind} | {workload} |" + " — |" * 7 + " not run¹ |")
            elif ours or theirs:
                lines.append(_row(kind, workload, ours, theirs))
    lines += [
        "",
        "×Beaker = wsgisession's req/s ÷ Beaker's (> 1 is faster).",
    ]
    if any(k in CLIENT_SIDE for k in kinds):
        lines += ["", f"¹ *one session* on the cookie store: {NOT_RUN}."]
    return [*lines, ""]


def _row(
    kind: str, workload: str, ours: ConcurrentRun | None, theirs: ConcurrentRun | None
) -> str:
    mine = _rate(ours)
    cells = [kind, workload, fmt(mine), pct(ours.spread if ours else None)]
    cells += [fmt(_rate(theirs)), pct(theirs.spread if theirs else None)]
    cells += [fmt(ratio(mine, _rate(theirs)), 2), _lost(ours), _lost(theirs)]
    check = _check(ours, theirs)
    if ours is not None and ours.workload in UNJUDGED and check == "ok":
        check = "reported (no lock: the later save of a key wins)"
    cells.append(check)
    return "| " + " | ".join(cells) + " |"


def _rate(run: ConcurrentRun | None) -> float | None:
    return None if run is None or run.invalid else run.median


def _lost(run: ConcurrentRun | None) -> str:
    if run is None or run.lost is None:
        return "—"
    total = sum(run.succeeded)
    share = f" ({run.lost / total:.0%})" if run.lost > 0 and total else ""
    return f"{run.lost:,} of {total:,}{share}"


def _check(*runs: ConcurrentRun | None) -> str:
    problems = []
    for run in runs:
        if run is None:
            continue
        if run.invalid:
            problems.append(f"{run.system}: {run.invalid}")
        elif run.errors:
            problems.append(
                f"{run.system}: {run.errors} failed requests ({run.first_error})"
            )
    return "; ".join(problems) if problems else "ok"
