"""Files of an SQLite database as the SQLite store tests handle them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def replace_with_a_copy(path: Path) -> None:
    """Put a consistent copy of the database in its place (``mv``)."""
    copy_path = path.with_name("copy.sqlite3")
    source, copy = sqlite3.connect(path), sqlite3.connect(copy_path)
    source.backup(copy)
    source.close()
    copy.close()
    os.replace(copy_path, path)


def descriptors_open_on(identity: tuple[int, int]) -> int:
    """How many of this process's descriptors are open on the file ``identity``."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            info = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        count += (info.st_dev, info.st_ino) == identity
    return count
