"""``benchmarks/atomic_floors.py`` still runs: one short round on the file,
SQLite, memcached and Redis stores (it starts its own servers), every row
measured. Its atomic and store steps check their own outcome and would
leave a row failed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs the scripts in a subprocess.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d+(\.\d+)?")  # a store part can come out negative by noise
KINDS = ("file", "sqlite", "memcached", "redis")


def test_every_row_is_measured() -> None:
    script, columns, operations = "atomic_floors.py", 8, ("getset", "new")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--only", ",".join(KINDS),
         "--rounds", "1", "--target", "0.005"],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == columns and cells[0] in KINDS:
            rows[cells[0], cells[1]] = cells[2:]
    assert set(rows) == {(kind, op) for kind in KINDS for op in operations}
    for cells in rows.values():
        assert all(NUMBER.fullmatch(cell) for cell in cells), cells
