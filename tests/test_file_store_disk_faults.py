"""FileStore when its file system misbehaves: a FIFO where a file should be,
an orphaned temporary file that cannot be removed, a full disk under a
user's index. Each request gets a fresh session (logged) or a named
StoreUnavailable, never a hang or a bare OSError, and what was saved stays."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from helpers import later, payload_of

from wsgisession import SessionMiddleware
from wsgisession.errors import StoreUnavailable
from wsgisession.stores.base import storage_key, user_storage_key
from wsgisession.stores.file import FileStore

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"),
    reason="needs FIFOs, fork() and resource.setrlimit()",
)

#: Seconds an operation may take before it counts as hung.
PATIENCE = 5.0


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


def record_path(store: FileStore, key: str) -> Path:
    name = storage_key(key)
    return Path(store.path) / name[:2] / name


@contextlib.contextmanager
def fifo_at(path: Path) -> Iterator[None]:
    """A FIFO in place of the file at ``path``; on leaving, anyone blocked
    on it is let go (a writer opens it and writes), so that a hung test
    fails instead of hanging the run."""
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    try:
        yield
    finally:
        for _ in range(4):  # each blocked reader needs a writer
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(path.lstat().st_mode):  # not replaced since
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                    os.write(fd, b"x")
                    os.close(fd)


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()`` in a thread; fail if it has not returned within ``seconds``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} still blocked after {seconds} s"
    if failure:
        raise failure[0]
    return outcome[0]


# -- a FIFO where a file should be --------------------------------------------------


def test_a_fifo_at_a_record_loads_as_no_session_and_is_saved_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening a FIFO to read waits for a writer, for ever: every load of
    the session, and every sweep, hung its thread. It holds no record: the
    load finds none (logged), a save replaces it, a sweep passes it."""
    caplog.set_level(logging.WARNING)
    store = FileStore(tmp_path / "s")
    key = store.generate_key()
    store.create(key, b"saved", later())
    path = record_path(store, key)
    with fifo_at(path):
        assert within(PATIENCE, lambda: store.load(key)) is None
        assert "unreadable session file" in caplog.text
        assert within(PATIENCE, lambda: store.clear_expired()) == 0
        within(PATIENCE, lambda: store.sweep_expired(1000))
        within(PATIENCE, lambda: store.update(key, lambda _: (b"new", later()), None))
    assert payload_of(store, key) == b"new"
    assert path.is_file()


def test_a_fifo_at_a_new_records_name_is_replaced(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    key = store.generate_key()
    store.create(store.generate_key(), b"other", later())  # the directories exist
    record_path(store, key).parent.mkdir(mode=0o700, exist_ok=True)
    with fifo_at(record_path(store, key)):
        assert within(PATIENCE, lambda: store.create(key, b"mine", later())) == key
    assert payload_of(store, key) == b"mine"


def test_a_fifo_at_a_user_index_reads_as_an_empty_index(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    session = SessionMiddleware(app, store=store).open_session()
    session["agent"] = "laptop"
    session.bind_user("alice")
    index = tmp_path / "s" / "users" / user_storage_key("alice")
    with fifo_at(index):
        assert within(PATIENCE, lambda: store.user_session_records("alice")) == {}
        key = store.generate_key()
        within(PATIENCE, lambda: store.create_user_session("alice", key, b"p", later()))
    assert list(store.user_session_records("alice")) == [storage_key(key)]


def test_a_fifo_at_a_request_lock_is_broken_as_a_damaged_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    key = store.generate_key()
    store.create(key, b"saved", later())
    with store.lock(key, timeout=1, ttl=10):  # the lock directory exists
        pass
    lock = tmp_path / "s" / ".locks" / "requests" / storage_key(key)

    def take_the_lock() -> bool:
        with store.lock(key, timeout=1, ttl=10):
            return True

    with fifo_at(lock):
        assert within(PATIENCE, take_the_lock)
    assert not lock.exists()


# -- an orphaned temporary file that cannot be removed ---------------------------


def _orphan(store: FileStore, key: str, directory: bool) -> Path:
    """An hour-old ``.tmp-`` file beside ``key``'s record: a directory
    (unlink() refuses it, EISDIR) or a file."""
    path = record_path(store, key)
    temp = path.with_name(f".tmp-{path.name}")
    if directory:
        temp.mkdir(mode=0o700)
    else:
        temp.write_bytes(b"half a rec")
    then = time.time() - 3600
    os.utime(temp, (then, then))
    return temp


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` made read-only while the app runs: mode 500, or for
    root (who writes there anyway) a read-only bind mount over it."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    here = str(directory)
    if subprocess.run(["mount", "--bind", here, here], check=False).returncode:
        pytest.skip("root, and no bind mount here: a mode of 500 stops no write")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", here], check=True)
        yield
    finally:
        subprocess.run(["umount", here], check=True)


def test_clear_expired_names_an_orphan_it_cannot_remove(tmp_path: Path) -> None:
    """clear_expired() let the OSError of removing an orphaned temporary file
    out bare (``wsgisession clear-expired`` printed a traceback); the
    incremental sweep named it. Both say StoreUnavailable, with the file."""
    store = FileStore(tmp_path / "s")
    key = store.generate_key()
    store.create(key, b"saved", later())
    temp = _orphan(store, key, directory=True)
    with pytest.raises(StoreUnavailable, match=temp.name):
        store.clear_expired()
    assert payload_of(store, key) == b"saved"


@pytest.mark.skipif(not shutil.which("mount"), reason="needs mount(8)")
def test_clear_expired_in_a_directory_made_read_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    key = store.generate_key()
    store.create(key, b"saved", later())
    store.update(key, lambda _: (b"saved", later()), None)  # its lock file exists
    temp = _orphan(store, key, directory=False)
    with read_only(temp.parent):
        with pytest.raises(StoreUnavailable, match=temp.name):
            store.clear_expired()
        assert payload_of(store, key) == b"saved"


# -- a full disk under a user's index ---------------------------------------------------

#: Bytes a process under the limit may make a file grow to: less than an
#: index of two sessions, more than nothing.
LIMIT = 100


def under_a_file_size_limit(call: Callable[[], object]) -> str:
    """``call()`` in a child process whose files may not grow past ``LIMIT``
    bytes (``EFBIG``, as a full disk gives ``ENOSPC``); its result's repr,
    or the exception it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
            outcome = repr(call()).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            outcome = f"{type(exc).__name__}: {exc}".encode()
        finally:
            os.write(write, outcome)
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            return pipe.read().decode()
    finally:
        os.waitpid(pid, 0)


def test_revoking_a_users_sessions_on_a_full_disk_ends_them_all(
    tmp_path: Path,
) -> None:
    """Listing a user's sessions rewrites the index without the records that
    are gone (a logout leaves one): on a full disk that write failed, and
    so did "log out everywhere", which only needs to read and remove files.
    Now the pruning waits for a later listing, and every session ends."""
    store = FileStore(tmp_path / "s")
    middleware = SessionMiddleware(app, store=store)
    sessions, keys = [], []
    for agent in ("laptop", "phone", "tablet"):
        session = middleware.open_session()
        session["agent"] = agent
        session.bind_user("alice")
        assert session.session_key is not None
        sessions.append(session)
        keys.append(session.session_key)
    sessions[0].flush()  # logged out: alice's index lists a removed record

    outcome = under_a_file_size_limit(lambda: middleware.revoke_user_sessions("alice"))

    assert outcome == "2", outcome
    assert [store.load(key) for key in keys] == [None, None, None]
    assert middleware.user_sessions("alice") == []
