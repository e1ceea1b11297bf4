"""wsgisession's benchmark: per-request cost against the bare app, Beaker and floors.

Usage (from the repository root)::

    python benchmarks/bench.py [--quick] [--only STORES] [--scale] [--out FILE]
                               [--concurrency-only | --no-concurrency]

It starts its own memcached and redis-server on free loopback ports (and
stops exactly those), keeps all data in a temporary directory, prints the
markdown report and writes it to ``--out``. The exit status is 1 when a
row failed its correctness checks (wsgisession losing an update under
concurrency included), 0 otherwise (targets not met included).
See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from _cases import Client, floor_cases, prime, workload_cases
from _concurrency import concurrency_run
from _floors import CONTEXTS, add_contexts, build_floor
from _load import LoadMeter
from _probes import WriteProbe
from _report import render, server_versions, source_fingerprint
from _results import Results
from _scale import SCALE_KINDS, scale_run
from _servers import Services
from _systems import (
    BUILDERS,
    COOKIE_NAMES,
    KINDS,
    SERVERS,
    Ctx,
    Skip,
    store_dir,
    wsgisession_app,
)
from _timing import Case, run_rounds
from _wsgi import hello_app

FULL = {"rounds": 11, "warmup": 0.1, "target": 0.15}
QUICK = {"rounds": 3, "warmup": 0.01, "target": 0.02}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (seconds)")
    parser.add_argument(
        "--only", default=",".join(KINDS), help="comma-separated store kinds"
    )
    parser.add_argument("--scale", action="store_true", help="add the scale run")
    parser.add_argument(
        "--scale-only", action="store_true", help="run the scale part alone"
    )
    parser.add_argument(
        "--scale-sizes",
        default="1000,1000000",
        help="session counts for --scale (default 1000,1000000)",
    )
    parser.add_argument(
        "--expired",
        type=int,
        default=None,
        help="expired sessions for the clear_expired() timing (100000; 10000 quick)",
    )
    threads = parser.add_mutually_exclusive_group()
    threads.add_argument(
        "--concurrency-only",
        action="store_true",
        help="run the 4-thread concurrency part alone",
    )
    threads.add_argument(
        "--no-concurrency", action="store_true", help="skip the concurrency part"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-sync", action="store_true", help="skip os.sync()")
    args = parser.parse_args(argv)
    args.kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown store kinds {unknown}; known: {', '.join(KINDS)}")
    args.sizes = [int(s) for s in args.scale_sizes.split(",")]
    return args


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def build_cases(ctx: Ctx, kinds: list[str], skipped: dict[str, str]) -> list[Case]:
    """The bare case, the layer cases, then per store: wsgisession, Beaker and
    the floor."""
    cases = [Case("bare", "-", "bare", Client(hello_app, "/untouched", "none"))]
    layers = layer_requests(ctx)
    cases += [Case("layer", "memory", w, step) for w, step in layers.items()]
    for kind in kinds:
        for system, build in BUILDERS.items():
            try:
                app, _store = build(kind, ctx)
            except Skip as exc:
                skipped[f"{system}/{kind}"] = str(exc)
                continue
            probe = WriteProbe(kind, store_dir(system, kind, ctx), ctx.services)
            try:
                cases += workload_cases(system, kind, app, COOKIE_NAMES[system], probe)
            except Exception as exc:  # noqa: BLE001 - the rows show the failure
                cases += _failed(system, kind, exc)
            finally:
                probe.close()
        floor = build_floor(kind, ctx)
        if floor is not None:
            cases += floor_cases(kind, add_contexts(floor[0], layers))
            if floor[1] is not None:
                ctx.closers.append(floor[1])
    return cases


def layer_requests(ctx: Ctx) -> dict[str, Client]:
    """The requests the in-context floors run after: write and new on a
    middleware over a memory store of their own (so that the memory cases
    time a store no floor request adds to)."""
    app, _store = wsgisession_app("memory", ctx)
    requests = {
        "write": Client(app, "/write", "sessionid", prime(app, "sessionid"), keep=True),
        "new": Client(app, "/new", "sessionid"),
    }
    assert set(requests) == set(CONTEXTS.values())
    return requests


def _failed(system: str, kind: str, exc: Exception) -> list[Case]:
    def fail() -> None:
        raise AssertionError("validation failed")

    reason = f"INVALID before timing: {type(exc).__name__}: {exc}"
    return [
        Case(system, kind, workload, fail, invalid=reason)
        for workload in ("untouched", "read", "write", "new")
    ]


def run(args: argparse.Namespace) -> Results:
    timing = QUICK if args.quick else FULL
    started = time.perf_counter()
    meter = LoadMeter()
    source = source_fingerprint()  # at import time: the code that is measured
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="wsgisession-bench-") as tmp:
        wanted = {k for k in args.kinds if k in SERVERS}
        if args.scale_only and not args.concurrency_only:
            wanted = set()
        with Services(Path(tmp), wanted) as services:
            ctx = Ctx(Path(tmp), services)
            skipped |= {name: why for name, why in services.skipped.items()}
            cases: list[Case] = []
            if not (args.scale_only or args.concurrency_only):
                cases = build_cases(ctx, args.kinds, skipped)
                progress(f"{len(cases)} cases; timing")
                run_rounds(
                    cases,
                    rounds=int(timing["rounds"]),
                    warmup=timing["warmup"],
                    target=timing["target"],
                    sync=not args.no_sync,
                    progress=progress,
                )
            concurrent = []
            if args.concurrency_only or not (args.scale_only or args.no_concurrency):
                concurrent = concurrency_run(
                    ctx, args.kinds, timing, skipped, progress, sync=not args.no_sync
                )
            extra: list[str] = []
            if args.scale or args.scale_only:
                kinds = [k for k in SCALE_KINDS if k in args.kinds]
                expired = args.expired or (10_000 if args.quick else 100_000)
                extra = scale_run(ctx, kinds, args.sizes, timing, progress, expired)
            ctx.close()
        progress("removing the temporary data")
    results = Results(cases, skipped=skipped, target=timing["target"])
    results.settings = _settings(args)
    results.servers = server_versions()
    results.extra = extra
    results.concurrency = concurrent
    results.seconds = time.perf_counter() - started
    results.machine = meter.summary()
    results.source = source
    return results


def _settings(args: argparse.Namespace) -> str:
    parts = ["--quick" if args.quick else "full"]
    parts.append(f"stores {','.join(args.kinds)}")
    if args.scale or args.scale_only:
        parts.append(f"scale sizes {args.scale_sizes}")
    if args.concurrency_only:
        parts.append("concurrency only")
    elif args.no_concurrency or args.scale_only:
        parts.append("no concurrency run")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    results = run(args)
    text = render(results, results.extra)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    raw = args.out.with_suffix(".json")
    raw.write_text(json.dumps(results.samples(), indent=1) + "\n", encoding="utf-8")
    progress(f"wrote {args.out} and {raw.name}")
    invalid = [c for c in results.cases if c.invalid is not None]
    invalid += [r for r in results.concurrency if r.invalid is not None]
    return 1 if invalid or "INVALID" in "".join(results.extra) else 0


if __name__ == "__main__":
    sys.exit(main())
