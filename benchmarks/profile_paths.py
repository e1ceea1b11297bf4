"""Profile wsgisession's request paths with cProfile, one store and workload at a time.

Usage (from the repository root)::

    python benchmarks/profile_paths.py --store file --workload write [-n 2000]

Prints the top functions by own time and by cumulative time, so that the
cost above the store's floor can be attributed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path

from _cases import WORKLOADS, Client, prime
from _servers import Services
from _systems import KINDS, Ctx, wsgisession_app


def profile(kind: str, workload: str, count: int, top: int) -> str:
    """Run ``count`` requests of ``workload`` under cProfile; return the stats."""
    with (
        tempfile.TemporaryDirectory(prefix="wsgisession-prof-") as tmp,
        Services(Path(tmp), {kind}) as services,
    ):
        ctx = Ctx(Path(tmp), services)
        app, _store = wsgisession_app(kind, ctx)
        fresh = workload in ("untouched", "new")  # no cookie, as in the benchmark
        value = None if fresh else prime(app, "sessionid")
        client = Client(app, "/" + workload, "sessionid", value, keep=not fresh)
        for _ in range(min(200, count)):  # warm up
            client()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            client()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"== {kind} / {workload}: {count} requests ==\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=KINDS, default="file")
    parser.add_argument("--workload", choices=WORKLOADS, default="write")
    parser.add_argument("-n", type=int, default=2000, help="requests to profile")
    parser.add_argument("--top", type=int, default=25, help="rows per listing")
    args = parser.parse_args(argv)
    print(profile(args.store, args.workload, args.n, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
