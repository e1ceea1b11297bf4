"""Files of an SQLite database as the SQLite store tests handle them."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from helpers import later

from wsgisession.stores import SQLiteStore


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


def idle_connections(store: SQLiteStore, count: int) -> Callable[[], None]:
    """Start ``count`` threads that save once, then hold a connection each at
    the same moment (so ``count`` are open) and leave them idle in the
    store's pool; returns what lets the threads end."""
    ready, release = threading.Barrier(count + 1), threading.Event()
    together = threading.Barrier(count)

    def use_then_idle() -> None:
        store.create(store.generate_key(), b"payload", later())
        with store._connections.holding():
            together.wait(5)
        ready.wait(5)
        release.wait(5)

    threads = [threading.Thread(target=use_then_idle) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.wait(5)

    def end() -> None:
        release.set()
        for thread in threads:
            thread.join(5)

    return end
