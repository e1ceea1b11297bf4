"""What the sweep that runs inside a request costs, whatever the store holds.

At most once per ``cleanup_interval`` (every second while sweeps find some)
a save also sweeps: the request that happens to save then pays for it, so
the sweep must stay a bounded step (``SWEEP_BATCH`` records, and as many
entries of the user indexes), however large the backlog. A user who logs in
again and again within ``cookie_age`` (a script, or an attacker with an
account) makes an index that lists thousands of sessions: a sweep used to
read the record of every one of them, inside someone else's request.

Files are counted by the interpreter's ``open`` audit events (``os.open``
raises one), so nothing of the store is replaced.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from wsgisession import SessionMiddleware
from wsgisession.cleanup import SWEEP_BATCH
from wsgisession.stores import FileStore

#: Sessions of one user, each from a login of its own.
LOGINS = 300

#: Open audit events are recorded here while a test listens (the hook
#: itself cannot be removed once added).
_listening: list[list[str]] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _listening and isinstance(args[0], (str, bytes)):
        _listening[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_hook)


@contextmanager
def files_opened() -> Iterator[list[str]]:
    """The paths opened in the block (by this process, any thread)."""
    opened: list[str] = []
    _listening.append(opened)
    try:
        yield opened
    finally:
        _listening.remove(opened)


def writing_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    environ["wsgisession"]["visited"] = True  # a new session: saved, so it sweeps
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.slow  # 300 logins of one user
def test_a_sweep_reads_a_bounded_part_of_a_large_user_index(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    store = FileStore(root)
    logins = SessionMiddleware(writing_app, store=store, cleanup_interval=0)
    for _ in range(LOGINS):  # the same user, a new session each time
        session = logins.open_session()
        session["agent"] = "script"
        session.bind_user("mallory")
    visitor = SessionMiddleware(writing_app, store=store, cleanup_interval=300)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}

    with files_opened() as opened:  # an anonymous visitor's first save sweeps
        body = visitor(environ, lambda status, headers, exc_info=None: None)
    assert list(body) == [b"ok"]

    # Session records and user indexes: 64 hex digits (lock files are not).
    records = [path for path in opened if len(Path(path).name) == 64]
    # One sweep: SWEEP_BATCH record files, as many entries of the user
    # indexes (their files included), and the visitor's own new record
    # (opened twice if its shard's directory is made for it); not every
    # session the index lists.
    assert len(records) <= 2 * SWEEP_BATCH + 2, (
        f"one request read {len(records)} session files"
    )
    assert len(store.user_session_records("mallory")) == LOGINS  # all still live
