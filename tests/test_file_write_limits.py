"""FileStore at the limits of the file system: a save that cannot be
written whole (a file size limit, ``RLIMIT_FSIZE``) fails, and leaves the
session as it was."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import later, payload_of

from wsgisession.errors import StoreUnavailable
from wsgisession.stores.base import storage_key
from wsgisession.stores.file import FileStore

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"),
    reason="needs fork() and resource.setrlimit()",
)

#: Bytes a process under the limit may make a file grow to.
LIMIT = 2000


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path) / name[:2] / name


def save_under_the_limit(store: FileStore, key: str, payload: bytes) -> str:
    """Save ``payload`` over the session in a child process whose files
    may not grow past ``LIMIT`` bytes; what the save raised there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        outcome = b"saved"
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
            store.update(key, lambda current: (payload, later()), None)
        except StoreUnavailable as exc:
            outcome = str(exc).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            outcome = repr(exc).encode()
        finally:
            os.write(write, outcome)
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            outcome = pipe.read().decode()
    finally:
        os.waitpid(pid, 0)
    return outcome


def test_a_save_past_the_file_size_limit_keeps_the_saved_session(
    tmp_path: Path,
) -> None:
    """A record of at most a page is rewritten in place: a write cut short
    by the limit had overwritten the start of the saved record, and the
    session was lost (logged out) for a save that failed. Now the save
    fails as a replacement does, naming the cause, and the session stays."""
    store = FileStore(tmp_path / "sessions")
    key = store.generate_key()
    store.create(key, b"a" * 500, later())
    inode = record_path(store, key).stat().st_ino

    outcome = save_under_the_limit(store, key, b"b" * 3000)

    assert "too large" in outcome.lower(), outcome
    assert payload_of(store, key) == b"a" * 500
    assert record_path(store, key).stat().st_ino == inode  # not replaced either
    assert sorted(os.listdir(record_path(store, key).parent)) == [
        record_path(store, key).name
    ]
    store.update(key, lambda current: (b"c" * 3000, later()), None)  # no limit
    assert payload_of(store, key) == b"c" * 3000
