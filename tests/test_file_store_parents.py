"""FileStore makes the missing parents of its directory private too, as
SQLiteStore does: a parent that others can write lets them move the
store's directory and put another in its path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import later, payload_of

from wsgisession.stores.file import FileStore


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_missing_parents_are_made_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "app" / "sessions"
    previous = os.umask(0o002)  # a shared group's umask
    try:
        store = FileStore(path)
    finally:
        os.umask(previous)
    for directory in [path, path.parent, path.parent.parent, path.parent.parent.parent]:
        assert mode(directory) == 0o700, directory
    key = store.generate_key()
    store.create(key, b"x", later())
    assert payload_of(store, key) == b"x"
