"""``benchmarks/atomic_floors.py`` still runs: one short round on the file,
SQLite, memcached and Redis stores (the script starts its own servers),
every row measured (the atomic and store steps check their own outcome and
would leave a row failed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs the script in a subprocess.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "atomic_floors.py"
NUMBER = re.compile(r"\d+(\.\d+)?")
KINDS = ("file", "sqlite", "memcached", "redis")


def test_atomic_floors_measure_every_row() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", ",".join(KINDS), "--rounds", "1",
         "--target", "0.005"],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in KINDS:
            rows[cells[0], cells[1]] = cells[2:]
    assert set(rows) == {(k, op) for k in KINDS for op in ("getset", "new")}
    for cells in rows.values():
        assert all(NUMBER.fullmatch(cell) for cell in cells), cells
