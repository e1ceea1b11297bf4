"""How busy the machine was while the benchmark ran (it shares its CPUs)."""

from __future__ import annotations

import os
import time


def _busy_and_total() -> tuple[int, int]:
    """Busy and total CPU jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class LoadMeter:
    """Machine CPU use during a run, split into this process and the rest."""

    def __init__(self) -> None:
        self.start_load = os.getloadavg()
        self.start = _busy_and_total()
        self.own = os.times()
        self.wall = time.monotonic()

    def summary(self) -> str:
        busy, total = _busy_and_total()
        busy, total = busy - self.start[0], total - self.start[1]
        now = os.times()
        own = (now.user - self.own.user) + (now.system - self.own.system)
        ticks = os.sysconf("SC_CLK_TCK")
        elapsed = max(total / ticks, 1e-9)  # CPU-seconds available, all CPUs
        others = max(busy / ticks - own, 0.0)
        load = os.getloadavg()
        return (
            f"load average {self.start_load[0]:.2f} at the start, {load[0]:.2f} "
            f"at the end; CPU busy during the run: this process "
            f"{own / elapsed:.0%}, everything else {others / elapsed:.0%} "
            "of the machine's capacity"
        )
