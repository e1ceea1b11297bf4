"""The markdown report: environment, floors, the main table and the targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable

from _concurrency_report import concurrency_section
from _floors import CONTEXTS, DESCRIPTIONS, OPS, WORKLOAD_OP
from _results import Results, fmt, pct, ratio
from _systems import BEAKER_NOTES, KINDS
from _targets import main_targets, target_table
from _timing import Case

PACKAGES = (
    "wsgisession",
    "beaker",
    "sqlalchemy",
    "pymemcache",
    "python-memcached",
    "redis",
    "psycopg",
    "itsdangerous",
    "werkzeug",
    "filelock",
)


def environment(servers: dict[str, str], machine: str, source: str) -> list[str]:
    """Lines describing the machine, the versions and the date (no local paths)."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    versions += [f"{name} {version}" for name, version in servers.items()]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- Date: {now}",
        f"- Machine: {hardware()}; {machine}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- Code: {source}",
        "- Versions: " + ", ".join(versions),
    ]


def hardware() -> str:
    """Operating system, CPU model and count, and memory, as a reader compares them."""
    uname = platform.uname()
    cpu = uname.processor or uname.machine
    memory = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in info
                    if "model name" in line
                ),
                cpu,
            )
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB of memory"
    except (OSError, ValueError):
        pass
    return (
        f"{uname.system} {uname.release} {uname.machine}, {cpu}, "
        f"{os.cpu_count()} CPUs (nproc){memory}"
    )


def source_fingerprint() -> str:
    """Which wsgisession was measured: its version (no path, no hash of files)."""
    return f"wsgisession {importlib.metadata.version('wsgisession')}"


def server_versions() -> dict[str, str]:
    """memcached and redis-server versions as their binaries report them."""
    found = {}
    for name, argv in (
        ("memcached", ["memcached", "-V"]),
        ("redis-server", ["redis-server", "--version"]),
        ("postgres", ["/usr/lib/postgresql/15/bin/postgres", "--version"]),
    ):
        try:
            out = subprocess.run(
                argv, check=False, capture_output=True, text=True, timeout=5
            )
        except OSError:
            continue
        words = out.stdout.split()
        version = next((w for w in words if w[:1].isdigit() or w.startswith("v=")), "")
        found[name] = version.removeprefix("v=")
    return found


METHOD = """\
- Method: in-process WSGI calls (an environ dict handed to the app, the body
  consumed and `close()` called; no HTTP, no server), one thread. Every case
  is warmed up and calibrated to a batch of ~{target:g} ms, then timed in
  {rounds} rounds that interleave all cases (order reversed on odd rounds).
  Figure = median of the per-round means, µs per request; *spread* =
  (max − min) / median. `os.sync()` and a GC run before every batch, outside
  the timing. Ratios come from the same run: ×bare = ÷ the bare hello app,
  ×Beaker = ÷ Beaker 1.14 on the same store (< 1 is faster), ×floor = ÷ the
  store's raw floor (read ÷ get, write ÷ get+set, new ÷ new).
- Workloads: *untouched* = middleware present, no cookie, the app never looks
  at the session; *read* = existing 10-key ~1 KB session, read one key;
  *write* = same session, increment a counter; *new* = no cookie, set one key.
- Checks inside the run, after every batch: *write*'s counter grew by exactly
  the batch size, *read* returned the stored value, *new* set a cookie whose
  session reads back, *untouched* set no cookie. A failing row says INVALID.
- *store writes*: measured over 20 requests before timing: files changed
  under the store's directory (SQLite's `-shm` index excluded), memcached
  storage/delete/touch counters (`cmd_set` includes add and cas), Redis
  write commands from `INFO commandstats` (commands run inside a Lua script
  count too, so one compare-and-set shows as `evalsha` + `set`), or
  responses carrying Set-Cookie for the cookie store."""


REPRODUCE = """\
To reproduce, from a checkout of the repository, on a machine with
`memcached` and `redis-server` installed (the benchmark starts its own on
free loopback ports and stops them):

```sh
python3 -m venv .venv
.venv/bin/pip install -e '.[bench,memcached,redis]' python-memcached
.venv/bin/python benchmarks/bench.py --scale --out benchmarks/RESULTS.md
```

Only the ratios travel between machines: compare them, not the µs.
`benchmarks/README.md` explains every option and column."""


def main_table(results: Results) -> list[str]:
    lines = [
        (
            "| store | workload | wsgisession µs | spread | ×bare | Beaker µs | spread "
            "| ×Beaker | floor µs | ×floor | store writes (wsgisession) | check |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    bare = results.median("bare", "-", "bare")
    for kind in results.kinds:
        for workload in ("untouched", "read", "write", "new"):
            ours = results.get("wsgisession", kind, workload)
            theirs = results.get("beaker", kind, workload)
            op = WORKLOAD_OP.get(workload)
            floor = results.median("floor", kind, op) if op else None
            mine = results.median("wsgisession", kind, workload)
            cells = [
                kind,
                workload,
                fmt(mine),
                pct(ours.spread if ours else None),
                fmt(ratio(mine, bare)),
                fmt(results.median("beaker", kind, workload)),
                pct(theirs.spread if theirs else None),
                fmt(ratio(mine, results.median("beaker", kind, workload)), 2),
                fmt(floor),
                fmt(ratio(mine, floor), 2),
                ours.writes.text if ours and ours.writes else "—",
                _check(ours, theirs),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _check(*cases: Case | None) -> str:
    problems = [
        f"{c.system}: {c.invalid}" for c in cases if c is not None and c.invalid
    ]
    return "; ".join(problems) if problems else "ok"


def floor_table(results: Results) -> list[str]:
    lines = [
        (
            "| floor | get µs | set µs | get+set µs | new µs "
            "| get+set in context µs | new in context µs | max spread |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        cases = [results.get("floor", kind, op) for op in OPS]
        if not any(cases):
            continue
        spreads = [c.spread for c in cases if c is not None and c.spread is not None]
        cells = [DESCRIPTIONS[kind]]
        cells += [fmt(floor_median(results, kind, op)) for op in OPS]
        cells.append(pct(max(spreads) if spreads else None))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "*in context*: the same operations, each step right after one write "
            "(get+set) or new-session request (new) on the memory store, whose "
            "own median (the *layer* case, same rounds) is taken off again: the "
            "floor run among the session layer's code and data, as a store's "
            "operations run in a request."
        ),
    ]
    return lines


def floor_median(results: Results, kind: str, op: str) -> float | None:
    """A floor operation's median; an in-context one without its layer request."""
    median = results.median("floor", kind, op)
    base_op = op.removesuffix(" in context")
    if base_op == op or median is None:
        return median
    layer = results.median("layer", "memory", CONTEXTS[base_op])
    return None if layer is None else median - layer


BREAKDOWN_NOTE = """*session layer* = the same workload on the memory store (cookie parsing,
JSON, change tracking, `Set-Cookie`, with a dict for storage); *store part* =
the rest. The floor leaves out everything the session layer does, so
×floor for the whole request cannot reach 1 even with a free store. The
floor in context is the same floor timed among the session layer's work
(see the floors' table): the part left above it is the store's own code."""


def breakdown_table(results: Results) -> list[str]:
    """Write and new requests split into the session layer and the store part."""
    lines = [
        (
            "| store | workload | wsgisession µs | session layer µs | store part µs "
            "| floor µs | store part ÷ floor | floor in context µs "
            "| store part ÷ in context |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in results.kinds:
        if kind == "memory":
            continue
        for workload in ("write", "new"):
            total = results.median("wsgisession", kind, workload)
            layer = results.median("wsgisession", "memory", workload)
            part = None if total is None or layer is None else total - layer
            op = WORKLOAD_OP[workload]
            floor = floor_median(results, kind, op)
            context = floor_median(results, kind, f"{op} in context")
            cells = [kind, workload, fmt(total), fmt(layer), fmt(part), fmt(floor)]
            cells += [
                fmt(ratio(part, floor), 2),
                fmt(context),
                fmt(ratio(part, context), 2),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", BREAKDOWN_NOTE]


def render(results: Results, extra: Iterable[str] = ()) -> str:
    """The whole report as markdown."""
    bare = results.get("bare", "-", "bare")
    lines = ["# wsgisession benchmark", ""]
    lines += environment(results.servers, results.machine, results.source)
    lines += [f"- Settings: {results.settings}; wall time {results.seconds:.0f} s"]
    if results.cases or not results.concurrency:
        lines += [METHOD.format(**_method_args(results)), ""]
    lines += [REPRODUCE, ""]
    if bare is not None:
        lines += [
            (
                f"Bare hello app (no middleware): **{fmt(bare.median)} µs** "
                f"(spread {pct(bare.spread)})."
            ),
            "",
        ]
    if results.cases:
        lines += ["## Results (µs per request)", ""] + main_table(results) + [""]
        lines += ["## Store floors (same run)", ""] + floor_table(results) + [""]
        lines += ["## Where write and new requests spend their time", ""]
        lines += breakdown_table(results) + [""]
        lines += ["## Targets", ""] + target_table(main_targets(results)) + [""]
    lines += concurrency_section(results.concurrency)
    lines += list(extra)
    if results.cases or results.concurrency:
        lines += configuration(results)
    lines += [f"- Skipped: {name}: {why}" for name, why in results.skipped.items()]
    return "\n".join(lines) + "\n"


def configuration(results: Results) -> list[str]:
    """How each system was set up."""
    lines = ["## Configuration", ""]
    kinds = results.kinds or [k for k in KINDS if k in _concurrency_kinds(results)]
    lines += [f"- Beaker / {k}: {BEAKER_NOTES[k]}" for k in kinds]
    lines += [
        (
            "- Beaker: `session.secret` set for server-side stores (signed id "
            "cookie), auto=False + `session.save()` after a change, other options "
            "at their defaults (`save_accessed_time=True`)."
        ),
        "- wsgisession: `SessionMiddleware(app, store=...)` with default options.",
    ]
    return lines


def _concurrency_kinds(results: Results) -> set[str]:
    return {run.kind for run in results.concurrency}


def _method_args(results: Results) -> dict[str, object]:
    rounds = max((len(c.samples) for c in results.cases), default=0)
    return {"rounds": rounds, "target": results.target * 1000}
