"""Interleaved timing: every case runs once per round, rounds alternate direction.

Each case is warmed up and calibrated to a batch of about ``target`` seconds.
Then ``rounds`` rounds run every case's batch in turn, reversing the order
on odd rounds, so that drift and bursts of noise on this shared machine hit
all cases alike. A case's figure is the median of its per-round means;
its spread is (max - min) / median. Dirty pages are flushed (``os.sync()``)
and garbage is collected before each batch, outside the timed part, so
one case's writeback does not land in the next case's batch.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _probes import Writes

Step = Callable[[], Any]


class RoundFigures:
    """``median`` and ``spread`` of a timed thing's per-round ``samples``."""

    samples: list[float]

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median; None below two rounds."""
        median = self.median
        if not median or len(self.samples) < 2:
            return None
        return (max(self.samples) - min(self.samples)) / median


@dataclass
class Case(RoundFigures):
    """One timed thing: a system on a store doing a workload, or a floor operation.

    ``pre()`` runs before each batch and ``post(n)`` after it (outside the
    timing); ``post`` raises AssertionError when the batch did not do its job,
    which marks the case INVALID.
    """

    system: str
    kind: str
    workload: str
    step: Step
    pre: Callable[[], None] | None = None
    post: Callable[[int], None] | None = None
    n: int = 0
    samples: list[float] = field(default_factory=list)
    invalid: str | None = None
    writes: Writes | None = None  # what the store saw, from the probes

    @property
    def label(self) -> str:
        return f"{self.system}/{self.kind}/{self.workload}"

    def __repr__(self) -> str:
        return f"<Case {self.label} n={self.n} median={self.median}>"


def calibrate(case: Case, warmup: float, target: float, cap: int = 200_000) -> None:
    """Warm the case up for ``warmup`` seconds and size its batch to ``target``."""
    step, count = case.step, 0
    start = time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if (count >= 5 and elapsed >= warmup) or count >= cap:
            break
    case.n = max(3, min(cap, int(target / (elapsed / count))))


def _batch(case: Case, sync: bool) -> None:
    if case.pre is not None:
        case.pre()
    if sync:
        os.sync()
    gc.collect()
    step, n = case.step, case.n
    start = time.perf_counter_ns()
    for _ in repeat(None, n):
        step()
    elapsed = time.perf_counter_ns() - start
    case.samples.append(elapsed / n / 1000.0)
    if case.post is not None:
        case.post(n)


def run_rounds(
    cases: list[Case],
    *,
    rounds: int,
    warmup: float,
    target: float,
    sync: bool = True,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Calibrate every case, then time them in interleaved rounds."""
    for case in cases:
        try:
            calibrate(case, warmup, target)
        except Exception as exc:  # noqa: BLE001 - reported as the case's error
            case.invalid = f"error in warm-up: {_describe(exc)}"
    gc.collect()
    gc.freeze()  # long-lived objects stay out of the collections we time
    try:
        for number in range(rounds):
            started = time.perf_counter()
            order = cases if number % 2 == 0 else cases[::-1]
            for case in order:
                if case.invalid is None or case.invalid.startswith("INVALID"):
                    _run_checked(case, sync)
            if progress is not None:
                spent = time.perf_counter() - started
                progress(f"round {number + 1}/{rounds}: {spent:.1f} s")
    finally:
        gc.unfreeze()


def _run_checked(case: Case, sync: bool) -> None:
    try:
        _batch(case, sync)
    except AssertionError as exc:
        case.invalid = case.invalid or f"INVALID: {exc}"
    except Exception as exc:  # noqa: BLE001 - reported as the case's error
        case.invalid = f"error: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:300] + "..."
