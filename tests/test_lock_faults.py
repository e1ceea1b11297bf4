"""Locks when something goes wrong around them: ``FileStore.close()`` while
another thread holds a shard's lock (the shard stays exclusive, and the
holder releases cleanly), and ``SQLStore.lock()`` after a dropped
connection whose lock row had committed (only the reply was lost: the row
is the request's own, not a lock to wait for).

The SQL test runs through a TCP proxy in front of the real PostgreSQL
server that, once armed, passes the lock row's INSERT to the server, waits
for the server's ReadyForQuery (the autocommit transaction committed), and
then closes the client's connection instead of passing the reply on.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from reply_dropping_proxy import ReplyDroppingProxy
from sql_support import sql_url
from sqlalchemy.engine import make_url

from wsgisession.errors import LockTimeout
from wsgisession.keys import generate_key
from wsgisession.stores import FileStore, SQLStore


@pytest.mark.slow  # waits a second to see the second writer held
def test_close_during_a_write_keeps_the_shard_exclusive(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    key = generate_key()
    assert store.create(key, b"v0", 2e9) == key

    in_merge, let_go = threading.Event(), threading.Event()
    first_error: list[BaseException] = []

    def slow_merge(current: bytes | None) -> tuple[bytes, float]:
        in_merge.set()
        let_go.wait(10)
        return b"first", 2e9

    def first() -> None:
        try:
            store.update(key, slow_merge, None)
        except BaseException as exc:  # noqa: BLE001 - judged below
            first_error.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert in_merge.wait(5)
    store.close()  # a shutdown, a CLI command on the same store object...

    second_done = threading.Event()

    def second() -> None:
        store.update(key, lambda current: (b"second", 2e9), None)
        second_done.set()

    other = threading.Thread(target=second)
    other.start()
    overlapped = second_done.wait(1.0)  # the shard is held: it must wait
    let_go.set()
    thread.join(10)
    other.join(10)
    assert not overlapped, "a second writer of the shard ran while the first held it"
    assert first_error == [], f"the first write failed: {first_error!r}"


#: PostgreSQL's ReadyForQuery: the statement's answer is complete (committed).
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


def insert_dropping_proxy(
    target: tuple[str, int], table: bytes = b"_locks"
) -> ReplyDroppingProxy:
    """A proxy that loses the answer to an INSERT into a table whose name
    holds ``table`` (the lock rows' by default)."""
    return ReplyDroppingProxy(target, (b"INSERT INTO", table), READY_FOR_QUERY)


@pytest.mark.slow  # starts PostgreSQL when the quick loop has not
def test_a_lock_whose_reply_was_lost_is_still_ours(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = make_url(sql_url("sql-postgresql", request, tmp_path))
    proxy = insert_dropping_proxy((url.host or "127.0.0.1", url.port or 5432))
    store = SQLStore(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    try:
        key = generate_key()
        store.load(key)  # connected, tables known
        proxy.armed.set()
        started = time.monotonic()
        try:
            with store.lock(key, 2.0, 60.0):
                pass
            outcome = "taken"
        except LockTimeout as exc:
            outcome = f"LockTimeout after {time.monotonic() - started:.1f} s: {exc}"
        assert proxy.dropped.is_set(), "the proxy never cut the connection"
        assert outcome == "taken", outcome
        # and nothing of it is left: the session is not blocked for lock_ttl
        with store.lock(key, 0.5, 60.0):
            pass
    finally:
        store.close()
        proxy.close()
