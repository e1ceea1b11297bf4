"""A process killed while it rewrites a user's index leaves
``users/.tmp-<index>``: cleanup removes it once it is a minute old, as it
removes every other orphaned temporary file of the file store."""

from __future__ import annotations

import os
import time
from pathlib import Path

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore
from wsgisession.stores.base import user_storage_key


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


def _left_by_a_killed_writer(path: Path, user: str, age: float) -> Path:
    """The temporary file a writer of ``user``'s index killed ``age`` s ago left."""
    temp = path / "users" / f".tmp-{user_storage_key(user)}"
    temp.write_bytes(b"half an ind")
    then = time.time() - age
    os.utime(temp, (then, then))
    return temp


def test_cleanup_removes_an_index_temp_file_a_killed_writer_left(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "s")
    session = SessionMiddleware(app, store=store).open_session()
    session["agent"] = "laptop"
    session.bind_user("alice")  # the users/ directory and alice's index exist
    old = _left_by_a_killed_writer(tmp_path / "s", "alice", age=3600)
    recent = _left_by_a_killed_writer(tmp_path / "s", "bob", age=0)
    store.clear_expired()
    assert not old.exists()
    assert recent.exists()  # a writer may still be at it
    # alice's index itself is untouched: it still lists her session
    listed = SessionMiddleware(app, store=store).user_sessions("alice")
    assert [entry.handle for entry in listed] == [session.handle]
