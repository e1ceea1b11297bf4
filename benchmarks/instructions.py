"""Instructions per request, counted by valgrind: figures that noise barely moves.

Usage (from the repository root; needs ``valgrind``, Debian's package)::

    python benchmarks/instructions.py [--store redis] [--workloads read,write,new]

Each workload runs in a child process under ``valgrind --tool=callgrind``
twice, with a short and a long count of requests; the difference divided
by the extra requests is what one request costs, start-up and priming
excluded. The bare app, wsgisession on the memory store (the session
layer) and the model middleware of ``minimal_model.py`` are always
counted; ``--store`` adds that store's part (its request minus the
memory store's) next to its floor (``_floors.py``: get+set for write, new
for new). Times on a shared machine move by 20-50 % from
run to run; instruction counts move much less (hash seeds are fixed),
but not by nothing: the cookie header and the save time's text are kept
for the second they were made in, so the child reads the time from a
clock that moves a fixed step per reading (:func:`step_clock`): how many
requests share a second is then the same in every run, where under
valgrind (some 50 times slower) it would depend on the machine's load
(7-9K more per request measured on a loaded machine than on an idle one
before). An A/B comparison still runs both sides in worktrees at paths of
the same length (the path's text is in some of the work). They leave out
what the CPU does
not count as instructions (cache misses, system calls, the other end of a
socket), so they judge Python-level work, not a store's round trips.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHORT, LONG = 100, 600
_COLLECTED = re.compile(r"Collected : (\d+)")
#: The floor operation each workload's store part is set against.
_FLOOR_OPS = {"write": "getset", "new": "new"}


def step_clock(
    start: float = 1_800_000_000.0, step: float = 0.000_01
) -> Callable[[], float]:
    """A ``time.time`` stand-in that moves ``step`` seconds per reading from
    ``start``, so that runs of the same requests read the same times; C
    code, as ``time.time`` is, so that it costs about what the real clock does."""
    return itertools.count(start, step).__next__


def child(kind: str, workload: str, count: int) -> None:
    """Run ``count`` requests of ``workload`` after a warm-up (inside valgrind).

    ``kind`` ``floor:KIND`` runs KIND's floor operation ``workload`` instead.
    """
    sys.path.insert(0, str(HERE))
    from _cases import Client, prime
    from _floors import build_floor
    from _servers import Services
    from _systems import Ctx, wsgisession_app
    from _wsgi import hello_app, session_app
    from minimal_model import model_middleware

    from wsgisession import clock

    with (
        clock.use(step_clock()),
        tempfile.TemporaryDirectory(prefix="wsgisession-instr-") as tmp,
        Services(Path(tmp), {kind.removeprefix("floor:")} - {"model"}) as services,
    ):
        client: Callable[[], Any]
        if kind.startswith("floor:"):
            built = build_floor(kind.removeprefix("floor:"), Ctx(Path(tmp), services))
            assert built is not None, f"no floor for {kind}"
            client = built[0][workload]
        elif workload == "bare":
            client = Client(hello_app, "/untouched", "sessionid")
        else:
            if kind == "model":
                app = model_middleware(
                    session_app(lambda environ: environ["wsgisession"])
                )
            else:
                app, _store = wsgisession_app(kind, Ctx(Path(tmp), services))
            fresh = workload in ("untouched", "new")
            value = None if fresh else prime(app, "sessionid")
            client = Client(app, "/" + workload, "sessionid", value, keep=not fresh)
        for _ in range(50):
            client()
        for _ in range(count):
            client()


def counted(kind: str, workload: str, count: int) -> int:
    """Instructions valgrind counts for a child running ``count`` requests."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        kind,
        workload,
        str(count),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    match = _COLLECTED.search(done.stderr)
    if match is None:
        raise RuntimeError(f"no count from valgrind: {done.stderr[-500:]}")
    return int(match.group(1))


def per_request(kind: str, workload: str) -> float:
    """Instructions of one request of ``workload`` on ``kind``."""
    extra = counted(kind, workload, LONG) - counted(kind, workload, SHORT)
    return extra / (LONG - SHORT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="memory", help="a benchmark store kind")
    parser.add_argument("--workloads", default="untouched,read,write,new")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, workload, count = args.child
        child(kind, workload, int(count))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    bare = per_request("memory", "bare")
    print(f"bare app: {bare / 1000:.1f}K instructions per request")
    store = args.store if args.store not in ("memory", "model") else None
    heading = "| workload | model layer | session layer (memory) | ÷ model |"
    print(heading + (f" {store} part | its floor | ÷ floor |" if store else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|---:|" if store else ""))
    for workload in args.workloads.split(","):
        memory = per_request("memory", workload)
        model = per_request("model", workload)
        row = (
            f"| {workload} | +{(model - bare) / 1000:.1f}K | "
            f"+{(memory - bare) / 1000:.1f}K | "
            f"{(memory - bare) / max(model - bare, 1):.1f} |"
        )
        if store and workload in _FLOOR_OPS:
            part = per_request(store, workload) - memory
            floor = per_request(f"floor:{store}", _FLOOR_OPS[workload])
            row += f" {part / 1000:.1f}K | {floor / 1000:.1f}K | {part / floor:.2f} |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
