"""Each store's raw floor timed inside a request's footprint, next to its store part.

Usage (from the repository root)::

    python benchmarks/floors_in_context.py [--only file,sqlite,memcached,redis] [--rounds 11]

``bench.py`` sets a store's part of a request (the request minus the same
request on the memory store) against the store's raw floor, timed in a
loop of nothing but the floor's operations. That loop keeps the client
library's code and data, and little else, in the processor's caches. A
request runs the whole session layer around the store's operations, and a
store that works through the kernel (files, sockets) has its caches
emptied by the kernel's own work besides, so the same operations run
slower in it.

This script times, in the same interleaved rounds as ``bench.py``:

* ``memory``: a write request and a new-session request on the memory
  store (the session layer);
* ``store``: the same requests on the store;
* ``floor``: ``_floors.py``'s get+set and new, in a loop;
* ``in context``: the same floor operations, each step after one memory
  request of the workload, so that they run among the session layer's
  code and data as the store's do; the memory request's time is taken off.

It reports the store part against both floors: what is left against the
floor in context is what the store's own code adds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

from _cases import Client, prime
from _floors import build_floor
from _systems import Ctx, scratch, wsgisession_app
from _timing import Case, run_rounds

KINDS = ("file", "sqlite", "memcached", "redis")
#: The floor operation each workload's store part is set against.
FLOOR_OPS = {"write": "getset", "new": "new"}


def request(kind: str, workload: str, ctx: Ctx) -> Callable[[], Any]:
    """One request of ``workload`` on a middleware over the ``kind`` store."""
    app, _store = wsgisession_app(kind, ctx)
    if workload == "new":
        return Client(app, "/new", "sessionid")
    return Client(app, "/write", "sessionid", prime(app, "sessionid"), keep=True)


def in_context(
    layer: Callable[[], Any], operation: Callable[[], Any]
) -> Callable[[], None]:
    """``operation`` right after a memory request (``layer``), as one step."""

    def step() -> None:
        layer()
        operation()

    return step


def cases_for(kind: str, ctx: Ctx, layers: dict[str, Callable[[], Any]]) -> list[Case]:
    """The store, floor and in-context cases of ``kind`` (none without its server)."""
    floor = build_floor(kind, ctx)
    if floor is None:
        return []
    ops = floor[0]
    cases = []
    for workload, op in FLOOR_OPS.items():
        cases.append(Case("store", kind, workload, request(kind, workload, ctx)))
        cases.append(Case("floor", kind, workload, ops[op]))
        context = in_context(layers[workload], ops[op])
        cases.append(Case("in context", kind, workload, context))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(KINDS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--target", type=float, default=0.1, help="seconds per batch")
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.only.split(",") if kind]
    with scratch(kinds, "wsgisession-context-") as ctx:
        services = ctx.services
        # The layer the in-context floors run after: requests of their own,
        # so that the memory cases time a store no floor writes to.
        layers = {workload: request("memory", workload, ctx) for workload in FLOOR_OPS}
        cases = [
            Case("memory", "memory", workload, request("memory", workload, ctx))
            for workload in FLOOR_OPS
        ]
        for kind in kinds:
            found = cases_for(kind, ctx, layers)
            if not found:
                print(f"{kind}: skipped ({services.skipped.get(kind, 'no server')})")
            cases += found
        run_rounds(cases, rounds=args.rounds, warmup=0.2, target=args.target)
        print(report(cases))
    return 0


def report(cases: list[Case]) -> str:
    """A markdown table of medians (µs) and the store part's two ratios."""
    medians = {
        (c.system, c.kind, c.workload): (
            statistics.median(c.samples) if c.samples and c.invalid is None else None
        )
        for c in cases
    }
    head = "| store | workload | store part µs | floor µs | in context µs |"
    lines = [
        head + " part ÷ floor | part ÷ in context |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind in dict.fromkeys(c.kind for c in cases if c.system == "store"):
        for workload in FLOOR_OPS:
            layer = medians["memory", "memory", workload]
            store, floor, context = (
                medians[system, kind, workload]
                for system in ("store", "floor", "in context")
            )
            if None in (layer, store, floor, context):
                failed = [c.invalid for c in cases if c.kind == kind and c.invalid]
                lines.append(
                    f"| {kind} | {workload} | failed: {'; '.join(failed)} |||||"
                )
                continue
            assert layer is not None and store is not None
            assert floor is not None and context is not None
            part, in_context_floor = store - layer, context - layer
            lines.append(
                f"| {kind} | {workload} | {part:.1f} | {floor:.1f} "
                f"| {in_context_floor:.1f} | {part / floor:.2f} "
                f"| {part / in_context_floor:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
