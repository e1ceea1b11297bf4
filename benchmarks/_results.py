"""What a run measured, indexed for the report and the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from _systems import KINDS
from _timing import Case


@dataclass
class Results:
    """Everything a run measured, indexed for the report."""

    cases: list[Case]
    skipped: dict[str, str] = field(default_factory=dict)
    settings: str = ""
    seconds: float = 0.0
    servers: dict[str, str] = field(default_factory=dict)
    target: float = 0.25  # seconds per batch
    extra: list[str] = field(default_factory=list)  # the scale run's section
    machine: str = ""  # how busy the machine was during the run
    source: str = ""  # which wsgisession code was measured
    concurrency: list[Any] = field(default_factory=list)  # _concurrency runs

    def samples(self) -> list[dict[str, object]]:
        """Every case's raw per-round means, for the JSON file."""
        return [
            {
                "system": c.system,
                "store": c.kind,
                "workload": c.workload,
                "batch": c.n,
                "samples_us": c.samples,
                "invalid": c.invalid,
            }
            for c in self.cases
        ] + [run.as_json() for run in self.concurrency]

    def get(self, system: str, kind: str, workload: str) -> Case | None:
        for case in self.cases:
            if (case.system, case.kind, case.workload) == (system, kind, workload):
                return case
        return None

    def median(self, system: str, kind: str, workload: str) -> float | None:
        case = self.get(system, kind, workload)
        if case is None or case.invalid is not None:
            return None
        return case.median

    @property
    def kinds(self) -> list[str]:
        present = {c.kind for c in self.cases if c.system == "wsgisession"}
        return [k for k in KINDS if k in present]


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure with about ``digits`` significant digits, or an em dash."""
    if value is None:
        return "—"
    if value >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"
